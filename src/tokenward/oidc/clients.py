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
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest
from tokenward.identity.apps import app_hash_of_origin

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


def hash_secret(value: str) -> str:
    """Hex SHA-256 of a secret, code or refresh token (what the database keeps)."""
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


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


@dataclass(frozen=True, slots=True)
class OidcClient:
    """One relying party. ``secret_hash`` is None for a public client.

    The methods below are the ones Authlib's grants call on a client (``ClientMixin``).
    """

    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    secret_hash: str | None = None
    created_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def public(self) -> bool:
        return self.secret_hash is None

    @property
    def app_hash(self) -> str:
        """The app hash of the first redirect URI's ``host[:port]`` (for clientappspolicy.csv)."""
        return app_hash_of_origin(self.redirect_uris[0])

    def app_hash_for(self, redirect_uri: str) -> str:
        return app_hash_of_origin(redirect_uri)

    # -- authlib ClientMixin --------------------------------------------------------------------

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": list(self.post_logout_redirect_uris)}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        from tokenward.oidc.claims import SCOPES

        if not scope:
            return "openid"
        return " ".join(s for s in dict.fromkeys(scope.split()) if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison (RFC 9700 §2.1); constant time is not needed, the URIs are public.
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_hash is None or not client_secret or len(client_secret) > 200:
            return False
        return hmac.compare_digest(hash_secret(client_secret).encode(), self.secret_hash.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")
