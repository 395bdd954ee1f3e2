"""tokenward as an OpenID Provider (docs/oidc.md): clients, claims, tokens and the Authlib-based provider."""

from __future__ import annotations

from tokenward.oidc.claims import SCOPES, user_claims
from tokenward.oidc.clients import OidcClient, check_redirect_uri, hash_secret, new_secret

__all__ = ["SCOPES", "OidcClient", "check_redirect_uri", "hash_secret", "new_secret", "user_claims"]
