"""OpenID Connect clients (relying parties) registered with ``tokenward oidc client add``.

A client is *confidential* (it holds a secret and authenticates at the token endpoint with
``client_secret_basic`` or ``client_secret_post``) or *public* (no secret; PKCE S256 is then
required, RFC 7636 / RFC 9700 §2.1.1). Its ``client_id`` has the shape of every tokenward client
ID (40 uppercase hex), so policy rows name it like any other client app: ``login`` in
userpolicy.csv, ``clientaccess`` in clientappspolicy.csv with the app hash of the redirect URI's
``host[:port]``, roles in clientscopespolicy.csv.

Secrets, codes and refresh tokens are prefixed random strings (secret scanners recognise them);
only their SHA-256 is stored: they carry 256 random bits, so a fast unkeyed hash is enough.
"""

from __future__ import annotations

import base64
import secrets
from urllib.parse import urlsplit

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest
from tokenward.records.oidc import OidcClient, hash_secret

__all__ = [
    "CLIENT_SECRET_PREFIX",
    "CODE_PREFIX",
    "REFRESH_PREFIX",
    "OidcClient",
    "check_redirect_uri",
    "hash_secret",
    "new_secret",
]

CLIENT_SECRET_PREFIX = "twocs_"
CODE_PREFIX = "twoc_"
REFRESH_PREFIX = "twor_"
MAX_URI_LENGTH = 2000
MAX_REDIRECT_URIS = 20


def new_secret(prefix: str) -> str:
    """``prefix`` + 256 random bits, base64url."""
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


def check_redirect_uri(uri: str, *, what: str = "redirect URI") -> str:
    """A redirect URI as registered: absolute, no fragment, https (or http on a loopback host).

    RFC 6749 §3.1.2: absolute, no fragment. RFC 8252 §7.3 / RFC 9700 §4.1: plain http only for
    loopback. Exact-match comparison later (no wildcards), so nothing is normalised here.
    """
    code = ErrorCode.OIDC_REDIRECT_URI_INVALID
    if not uri or len(uri) > MAX_URI_LENGTH or any(ord(c) < 33 or ord(c) == 127 for c in uri):
        raise BadRequest(f"the {what} must be an absolute URL without spaces (at most 2000 characters)", code=code)
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise BadRequest(f"the {what} {uri!r} is not a URL", code=code) from None
    if parts.fragment or "#" in uri:
        raise BadRequest(f"the {what} {uri!r} may not have a #fragment (RFC 6749 §3.1.2)", code=code)
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password:
        raise BadRequest(f"the {what} {uri!r} needs a host and no user:password@", code=code)
    loopback = host in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "https" or (parts.scheme == "http" and loopback):
        return uri
    raise BadRequest(f"the {what} {uri!r} must use https (http only on localhost)", code=code)
