from __future__ import annotations

import time
from typing import Any

import pytest

from tests.forwardauth.helpers import NOOP, keyring
from tokenward.errors import BadRequest
from tokenward.forwardauth.config_token import decode_token, encode_token
from tokenward.forwardauth.schema import parse_document
from tokenward.keys import Keyring


def test_encrypted_round_trip_hides_the_document() -> None:
    kr = keyring()
    doc = {
        "jti": "abc",
        "tokenward": {
            "plugins": [
                {"type": "request_header", "header": "X-Key", "rule": {"method": "eq", "value": "s3cret-value"}}
            ]
        },
    }
    token = encode_token(doc, kr)
    assert token.count(".") == 4 and "s3cret" not in token
    decoded = decode_token(token, kr, now=time.time())
    assert decoded.kind == "jwe" and decoded.key_id == kr.current.key_id
    assert decoded.document.jti == "abc"


def test_signed_only_round_trip() -> None:
    kr = keyring()
    token = encode_token(NOOP, kr, signed_only=True)
    assert token.count(".") == 2
    assert decode_token(token, kr, now=time.time()).kind == "jws"


@pytest.mark.parametrize("signed_only", [False, True])
def test_tampered_truncated_garbage_and_wrong_key(signed_only: bool) -> None:
    kr = keyring()
    token = encode_token(NOOP, kr, signed_only=signed_only)
    parts = token.split(".")
    parts[-2] = parts[-2][:-2] + ("AA" if not parts[-2].endswith("AA") else "BB")
    for bad in (".".join(parts), token[:-5], "garbage", "", "a.b.c", "x" * 40_000):
        with pytest.raises(BadRequest) as info:
            decode_token(bad, kr, now=time.time())
        assert info.value.error_code == "config_token_invalid", bad[:20]
    other = Keyring(current=kr.current.__class__.generate(now=time.time(), random_bytes=b"\x01" * 32))
    with pytest.raises(BadRequest) as info:
        decode_token(token, other, now=time.time())
    assert info.value.error_code in {"config_token_key_unknown", "config_token_invalid"}


def test_rotation_previous_key_until_grace_ends() -> None:
    old = keyring()
    token = encode_token(NOOP, old)
    new = keyring()
    rotated = Keyring(current=new.current, previous=old.current, previous_until=time.time() + 60)
    assert decode_token(token, rotated, now=time.time()).document.tokenward.plugins
    with pytest.raises(BadRequest) as info:
        decode_token(token, rotated, now=time.time() + 120)
    assert info.value.error_code == "config_token_key_unknown"


def test_expired() -> None:
    kr = keyring()
    token = encode_token({**NOOP, "exp": int(time.time()) - 1}, kr)
    with pytest.raises(BadRequest) as info:
        decode_token(token, kr, now=time.time())
    assert info.value.error_code == "config_token_expired"
    assert decode_token(token, kr, now=time.time(), check_expiry=False).document.exp


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"tokenward": {"plugins": []}}, "tokenward"),
        ({"tokenward": {"plugins": [{"type": "nope"}]}}, "tokenward.plugins.0"),
        ({"tokenward": {"plugins": [{"type": "noop", "extra": 1}]}}, "tokenward.plugins.0.noop.extra"),
        (
            {"tokenward": {"plugins": [{"type": "jwt", "algorithms": ["RS256"], "secret": "x" * 20}]}},
            "tokenward.plugins.0.jwt",
        ),
        (
            {"tokenward": {"plugins": [{"type": "htpasswd", "htpasswd": "bob:plain"}]}},
            "tokenward.plugins.0.htpasswd.htpasswd",
        ),
        (
            {
                "tokenward": {
                    "plugins": [{"type": "request_param", "param": "k", "rule": {"method": "regex", "value": "("}}]
                }
            },
            "tokenward.plugins.0.request_param.rule",
        ),
        (
            {
                "tokenward": {
                    "plugins": [{"type": "noop", "pcb": {"skip": [{"query": "$[", "rule": {"method": "empty"}}]}}]
                }
            },
            "tokenward.plugins.0.noop.pcb.skip.0",
        ),
        (
            {"tokenward": {"plugins": [{"type": "noop"}], "custom_service_headers": {"Remote-User": {"value": "x"}}}},
            "tokenward.custom_service_headers",
        ),
        (
            {"tokenward": {"plugins": [{"type": "noop"}], "custom_service_headers": {"X-A": {"value": "a\r\nB: c"}}}},
            "tokenward.custom_service_headers.X-A.value",
        ),
        (
            {
                "tokenward": {
                    "plugins": [
                        {"type": "source_identifier", "login_url": "https://a.example/login", "login_redirect": "never"}
                    ]
                }
            },
            "tokenward.plugins.0.source_identifier.login_redirect",
        ),
        (
            {"tokenward": {"plugins": [{"type": "source_identifier", "login_redirect": "always"}]}},
            "tokenward.plugins.0.source_identifier",
        ),
        ({"tokenward": {"config_token_store_id": "s"}}, "tokenward"),
        (
            {"tokenward": {"plugins": [{"type": "noop"}], "config_token_store_id": "s", "config_token_id": "i"}},
            "tokenward",
        ),
    ],
)
def test_bad_documents_are_refused_with_the_path(doc: dict[str, Any], path: str) -> None:
    with pytest.raises(BadRequest) as info:
        encode_token(doc, keyring())
    assert info.value.error_code == "config_token_schema"
    assert f"field {path}:" in info.value.detail


def test_pointer_document() -> None:
    doc = parse_document({"tokenward": {"config_token_store_id": "primary", "config_token_id": "1"}})
    assert doc.tokenward.pointer == ("primary", "1")


def test_secrets_stay_out_of_reprs() -> None:
    doc = parse_document(
        {
            "tokenward": {
                "plugins": [
                    {"type": "request_header", "header": "X-K", "rule": {"method": "eq", "value": "hunter2-hunter2"}},
                    {"type": "jwt", "algorithms": ["HS256"], "secret": "s3cr3t-s3cr3t-s3cr3t"},
                    {"type": "htpasswd", "htpasswd": "bob:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI="},
                ]
            }
        }
    )
    text = repr(doc)
    assert "hunter2" not in text and "s3cr3t" not in text and "EfatjsUq" not in text
