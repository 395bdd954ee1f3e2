"""An OpenID Connect client (relying party) as stored: ``oidc.clients`` registers them, ``storage.oidc`` keeps them.

Secrets are kept as their SHA-256 (:func:`hash_secret`): they carry 256 random bits, so a fast
unkeyed hash is enough.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from tokenward.origins import app_hash_of_origin

__all__ = ["SCOPES", "OidcClient", "hash_secret"]

#: Scopes the provider knows; any other requested scope is dropped (RFC 6749 §3.3).
SCOPES = ("openid", "email", "profile", "groups")


def hash_secret(value: str) -> str:
    """Hex SHA-256 of a secret, code or refresh token (what the database keeps)."""
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


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
