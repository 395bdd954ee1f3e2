"""Pure identity functions: bad inputs, each with its own code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from joserfc.jwk import KeySet

from tokenward.errors import TokenwardError
from tokenward.identity import apps, captcha, client_tokens, source
from tokenward.keys import Keyring, Purpose, Secret, TimeCode

VECTORS = Path(__file__).parent / "vectors"
SI = json.loads((VECTORS / "source_identifier.json").read_text())
CT = json.loads((VECTORS / "client_token.json").read_text())


def _code(value: int) -> TimeCode:
    return TimeCode(label=29614680, secret=Secret(bytes([value]) * 32))


def _si_error(token: str, keyring: Keyring, now: float) -> str:
    with pytest.raises(TokenwardError) as info:
        source.open_source_identifier(token, keyring=keyring, now=now)
    return info.value.error_code


def test_source_identifier_failures() -> None:
    keyring = Keyring(TimeCode.parse(SI["timecode"]))
    token: str = SI["source_identifier"]
    assert _si_error("nonsense", keyring, SI["now"]) == "source_identifier_malformed"
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    assert _si_error(flipped, keyring, SI["now"]) == "source_identifier_tampered"
    assert _si_error(token, keyring, SI["identity"]["exp"]) == "source_identifier_expired"
    assert _si_error(token, Keyring(_code(7)), SI["now"]) == "timecode_mismatch"
    # After rotation the old code is accepted during its grace period only.
    rotated = Keyring(_code(7), TimeCode.parse(SI["timecode"]), previous_until=SI["now"] + 10)
    assert source.open_source_identifier(token, keyring=rotated, now=SI["now"]).subject == "alice@example.com"
    assert _si_error(token, rotated, SI["now"] + 10) == "timecode_mismatch"


def test_source_identifier_header_is_authenticated() -> None:
    keyring = Keyring(TimeCode.parse(SI["timecode"]))
    other = Keyring(_code(7))
    # Same body under another (valid) key id: AAD binds the key id, so it fails as tampered.
    forged = SI["source_identifier"].replace(SI["key_id"], other.current.key_id)
    assert _si_error(forged, other, SI["now"]) == "source_identifier_tampered"
    assert "Secret('**********')" in repr(keyring.key(Purpose.SOURCE_IDENTIFIER))


def test_client_token_failures() -> None:
    keys = KeySet.import_key_set(CT["jwks"])
    with pytest.raises(TokenwardError) as info:
        client_tokens.verify_client_token(CT["client_token"], keys, now=CT["now"] + 900, issuer="auth.example.com")
    assert info.value.error_code == "client_token_expired"
    with pytest.raises(TokenwardError) as info:
        client_tokens.verify_client_token(CT["client_token"], keys, now=CT["now"], issuer="other.example.com")
    assert info.value.error_code == "client_token_foreign"
    foreign = KeySet.import_key_set(client_tokens.jwks(Keyring(_code(9)), now=0))  # type: ignore[arg-type]
    with pytest.raises(TokenwardError) as info:
        client_tokens.verify_client_token(CT["client_token"], foreign, now=CT["now"], issuer="auth.example.com")
    assert info.value.error_code == "timecode_mismatch"
    assert "tokenward timecode show" in info.value.detail
    head, payload, signature = CT["client_token"].split(".")
    forged = f"{head}.{payload}.{'A' * len(signature)}"
    with pytest.raises(TokenwardError) as info:
        client_tokens.verify_client_token(forged, keys, now=CT["now"], issuer="auth.example.com")
    assert info.value.error_code == "client_token_invalid"


def test_captcha_codes_and_pkce() -> None:
    code = captcha.new_code(lambda alphabet: alphabet[0])
    assert code == "AAAAA" and len(captcha.ALPHABET) == len(set(captcha.ALPHABET))
    assert not set("0O1IL2Z5S8B6G") & set(captcha.ALPHABET)
    assert captcha.normalize_code(" k7m-xa ") == "K7MXA"
    with pytest.raises(TokenwardError) as info:
        captcha.check_pkce("a" * 43, captcha.pkce_challenge("b" * 43))
    assert info.value.error_code == "pkce_mismatch"
    with pytest.raises(TokenwardError) as info:
        captcha.check_pkce("short", captcha.pkce_challenge("b" * 43))
    assert info.value.error_code == "pkce_malformed"


def test_client_registry_round_trip_and_errors() -> None:
    registry, app = apps.ClientRegistry().register(
        name="Example", origins=["https://App.example.com:8080/x", "app.example.com:8080"], client_id="ab" * 20, now=1
    )
    assert app.client_id == "AB" * 20 and app.origins == ("app.example.com:8080",)
    assert app.allows_hash(apps.app_hash_of_origin("https://app.example.com:8080").lower())
    assert not app.allows_hash(apps.app_hash_of_origin("https://evil.example.com"))
    assert apps.ClientRegistry.parse(registry.render()) == registry
    calls: list[tuple[Callable[[], object], str]] = [
        (lambda: registry.register(name="Example", origins=[], client_id="CD" * 20, now=1), "client_name_taken"),
        (lambda: registry.get("EF" * 20), "client_unknown"),
        (lambda: apps.normalize_client_id("xyz"), "client_id_malformed"),
        (lambda: apps.origin_host("https://user:pw@host"), "origin_malformed"),
    ]
    for call, code in calls:
        with pytest.raises(TokenwardError) as info:
            call()
        assert info.value.error_code == code
    with pytest.raises(TokenwardError) as info:
        apps.ClientRegistry.parse(b"{not json")
    assert info.value.error_code == "client_ids_invalid"
    assert apps.new_client_id(bytes(20)) == "0" * 40
