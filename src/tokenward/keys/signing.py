"""Ed25519 compact JWS for tokens other libraries must verify (client tokens; docs/protocol.md §6).

Tokens are signed with ``alg`` ``EdDSA`` (RFC 8037), the name PyJWT, Node's ``jose`` and joserfc
all accept; verifiers here also accept RFC 9864's fully-specified ``Ed25519`` (what tokenward
signed before 0.2), and nothing else — the list is closed, whatever a header asks for.

joserfc marks ``EdDSA`` deprecated (RFC 9864) and warns on every use; this module keeps its own
:class:`JWSRegistry` whose ``EdDSA`` is restricted to Ed25519 keys (the deprecation is about the
name being polymorphic over curves; ours never is), so nothing warns and the global registry is
left alone.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jws
from joserfc.errors import InvalidKeyTypeError
from joserfc.jwa import EdDSAAlgorithm
from joserfc.jwk import KeySet, OKPKey
from joserfc.jws import JWSRegistry

from tokenward.keys.secret import Secret

__all__ = [
    "ACCEPTED_ALGORITHMS",
    "REGISTRY",
    "SIGNING_ALGORITHM",
    "public_jwk",
    "public_jwks",
    "sign_compact",
    "verify_compact",
]

#: What tokenward signs with (RFC 8037 name, understood by every mainstream JWT library).
SIGNING_ALGORITHM = "EdDSA"
#: What verifiers accept: the signing name and RFC 9864's ``Ed25519``. Closed list.
ACCEPTED_ALGORITHMS = ("EdDSA", "Ed25519")


class _Ed25519EdDSA(EdDSAAlgorithm):
    """``EdDSA`` over Ed25519 only: no curve confusion, so no deprecation warning."""

    security_warning = None  # type: ignore[assignment]

    def sign(self, msg: bytes, key: OKPKey) -> bytes:
        if not isinstance(key.get_op_key("sign"), Ed25519PrivateKey):
            raise InvalidKeyTypeError("tokenward signs EdDSA with Ed25519 keys only")
        return super().sign(msg, key)

    def verify(self, msg: bytes, sig: bytes, key: OKPKey) -> bool:
        if not isinstance(key.get_op_key("verify"), Ed25519PublicKey):
            return False
        return super().verify(msg, sig, key)


class _Registry(JWSRegistry):
    # A dict of its own: JWSRegistry.register() writes into a class attribute shared by every registry.
    algorithms: ClassVar[dict[str, Any]] = {  # type: ignore[misc]
        SIGNING_ALGORITHM: _Ed25519EdDSA(),
        "Ed25519": JWSRegistry.algorithms["Ed25519"],  # RFC 9864, registered by joserfc.jws
    }
    recommended: ClassVar[list[str]] = []  # type: ignore[misc]


#: The registry every client-token signature goes through (headers checked strictly, sizes capped).
REGISTRY: JWSRegistry = _Registry(algorithms=list(ACCEPTED_ALGORITHMS))


def _private_jwk(key_id: str, seed: Secret) -> OKPKey:
    private = Ed25519PrivateKey.from_private_bytes(seed.reveal())
    return OKPKey.import_key(private, {"kid": key_id, "use": "sig", "alg": SIGNING_ALGORITHM})


def public_jwk(key_id: str, seed: Secret) -> dict[str, Any]:
    """The public JWK for the Ed25519 key with 32-byte ``seed``: ``{"kty": "OKP", "crv": "Ed25519", …}``.

    ``alg`` is ``EdDSA``: PyJWT's ``PyJWK`` and ``jose``'s ``createLocalJWKSet`` pick a key by it.
    """
    public = Ed25519PrivateKey.from_private_bytes(seed.reveal()).public_key()
    return OKPKey.import_key(public, {"kid": key_id, "use": "sig", "alg": SIGNING_ALGORITHM}).as_dict(private=False)


def public_jwks(keys: list[tuple[str, Secret]]) -> dict[str, Any]:
    """``{"keys": [...]}`` for ``(key_id, seed)`` pairs, in the given order (current first)."""
    return {"keys": [public_jwk(kid, seed) for kid, seed in keys]}


def sign_compact(header: dict[str, Any], claims: dict[str, Any], *, key_id: str, seed: Secret) -> str:
    """A compact JWS over the canonical JSON of ``claims``; ``alg`` and ``kid`` are set here."""
    protected = {**header, "alg": SIGNING_ALGORITHM, "kid": key_id}
    payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    return jws.serialize_compact(
        protected, payload, _private_jwk(key_id, seed), list(ACCEPTED_ALGORITHMS), registry=REGISTRY
    )


def verify_compact(token: str, key_set: KeySet) -> tuple[dict[str, Any], bytes]:
    """``(header, payload)`` of a compact JWS whose signature a key of ``key_set`` checks.

    Raises :class:`joserfc.errors.JoseError` (or ``ValueError``) when it does not; the caller
    turns that into its own error code.
    """
    # A key's ``alg`` member must equal the header's in joserfc; both accepted names mean the same
    # signature over the same Ed25519 key, so the key is matched by ``kid`` and type only.
    keys = KeySet([OKPKey.import_key(jwk) for jwk in _ed25519_without_alg(key_set)])
    obj = jws.deserialize_compact(token, keys, list(ACCEPTED_ALGORITHMS), registry=REGISTRY)
    return dict(obj.headers()), obj.payload


def _ed25519_without_alg(key_set: KeySet) -> list[dict[str, Any]]:
    """The set's OKP Ed25519 keys without ``alg``; other keys can never check these signatures."""
    found = []
    for key in key_set.keys:
        jwk = dict(key.as_dict(private=False))
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            found.append({name: value for name, value in jwk.items() if name != "alg"})
    return found
