"""A client token verifies without tokenward code in PyJWT, joserfc and Node's ``jose`` (issue 14 item 3).

Each library gets only the token and the JSON of ``/.well-known/jwks.json``; each must accept a
good token (signature, issuer, audience = the destination, window) and refuse a tampered one.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from tests.client.conftest import make_claims
from tokenward.identity.client_tokens import jwks, sign_client_token
from tokenward.keys import Keyring


def _token_and_jwks(keyring: Keyring) -> tuple[str, dict[str, Any], dict[str, Any]]:
    now = time.time()
    claims = make_claims(now=now, app_hash="AB" * 64)
    token = sign_client_token(claims, keyring)
    # Through JSON, as a verifier fetching the endpoint would see it.
    return token, json.loads(json.dumps(jwks(keyring, now=now))), claims.to_claims()


def _tamper(token: str) -> str:
    head, payload, sig = token.split(".")
    return f"{head}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{sig}"


def test_pyjwt_verifies_a_client_token_with_the_jwks(keyring: Keyring) -> None:
    token, key_set, expected = _token_and_jwks(keyring)
    keys = pyjwt.PyJWKSet.from_dict(key_set)
    key = keys[pyjwt.get_unverified_header(token)["kid"]]
    claims = pyjwt.decode(
        token, key, algorithms=["EdDSA"], audience="api.example.com", issuer="auth.example.com", leeway=5
    )
    assert claims == expected
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(_tamper(token), key, algorithms=["EdDSA"], audience="api.example.com")
    with pytest.raises(pyjwt.InvalidAudienceError):
        pyjwt.decode(token, key, algorithms=["EdDSA"], audience="other.example.com")


# joserfc marks the polymorphic name "EdDSA" deprecated (RFC 9864) and warns; the token still verifies.
@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")
def test_joserfc_verifies_a_client_token_with_the_jwks(keyring: Keyring) -> None:
    token, key_set, expected = _token_and_jwks(keyring)
    keys = KeySet.import_key_set(key_set)  # type: ignore[arg-type]
    decoded = jose_jwt.decode(token, keys, algorithms=["EdDSA"])
    registry = jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": "auth.example.com"}, aud={"essential": True, "value": "api.example.com"}
    )
    registry.validate(decoded.claims)
    assert decoded.claims == expected
    with pytest.raises(BadSignatureError):
        jose_jwt.decode(_tamper(token), keys, algorithms=["EdDSA"])


def _node(node_dir: Path, **request: Any) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        ["node", str(node_dir / "verify.mjs")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=node_dir,
        timeout=120,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_node_jose_verifies_a_client_token_with_the_jwks(keyring: Keyring, node_jose: Path) -> None:
    token, key_set, expected = _token_and_jwks(keyring)
    common = {"jwks": key_set, "issuer": "auth.example.com", "now": time.time()}
    status, out = _node(node_jose, token=token, audience="api.example.com", **common)
    assert status == 0, out
    assert out["claims"] == expected
    assert out["header"]["alg"] == "EdDSA"
    status, out = _node(node_jose, token=_tamper(token), audience="api.example.com", **common)
    assert (status, out) == (1, {"error": "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"})
    status, out = _node(node_jose, token=token, audience="other.example.com", **common)
    assert (status, out) == (1, {"error": "ERR_JWT_CLAIM_VALIDATION_FAILED"})
