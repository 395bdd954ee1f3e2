from __future__ import annotations

import secrets

import pytest

from tokenward.errors import TimeCodeError
from tokenward.keys import Keyring, Purpose, Secret, TimeCode, align_label

NOW = 1_776_000_000.0  # a fixed instant; the clock is always passed in


def make(seed: int = 1, now: float = NOW) -> TimeCode:
    return TimeCode.generate(now=now, random_bytes=bytes([seed]) * 32)


def test_label_is_15_minute_aligned_unix_minutes() -> None:
    code = make()
    assert code.label % 15 == 0
    assert code.label == align_label(NOW)
    assert code.label * 60 <= NOW < (code.label + 15) * 60


def test_round_trip() -> None:
    code = TimeCode.generate(now=NOW, random_bytes=secrets.token_bytes(32))
    text = code.format()
    assert text.startswith("tw1.") and text.isprintable() and " " not in text
    parsed = TimeCode.parse(f"  {text}\n")
    assert parsed.label == code.label and parsed.secret.equals(code.secret)


@pytest.mark.parametrize(
    ("mangle", "code"),
    [
        (lambda t: t[:-1], "timecode_truncated"),
        (lambda t: t[:30], "timecode_malformed"),
        (lambda t: t + "x", "timecode_truncated"),
        (lambda t: "tw2" + t[3:], "timecode_version"),
        (lambda t: "28768365", "timecode_version"),
        (lambda t: "", "timecode_malformed"),
        (lambda t: t.replace(".", " "), "timecode_malformed"),
    ],
)
def test_bad_codes_are_refused_with_a_specific_code(mangle: object, code: str) -> None:
    text = make().format()
    with pytest.raises(TimeCodeError) as info:
        TimeCode.parse(mangle(text))  # type: ignore[operator]
    assert info.value.error_code == code


def test_single_character_typo_is_caught_by_the_check() -> None:
    text = make().format()
    secret_start = text.index(".", 4) + 1
    for position in range(secret_start, secret_start + 43):
        swapped = "A" if text[position] != "A" else "B"
        typo = text[:position] + swapped + text[position + 1 :]
        with pytest.raises(TimeCodeError) as info:
            TimeCode.parse(typo)
        assert info.value.error_code == "timecode_checksum"


def test_unaligned_label_is_refused() -> None:
    with pytest.raises(TimeCodeError):
        TimeCode(label=29614681, secret=Secret(bytes(32)))


def test_secret_never_in_repr_or_str() -> None:
    code = make(7)
    secret_text = code.format().split(".")[2]
    keyring = Keyring(code, make(8), NOW + 10)
    for text in (repr(code), str(code), repr(keyring), repr(code.secret), str(keyring.key(Purpose.CSRF))):
        assert secret_text not in text
        assert code.secret.reveal().hex() not in text
        assert "\\x07" not in text


def test_keyring_previous_code_only_during_grace() -> None:
    old, new = make(1), make(2)
    ring = Keyring(new, old, previous_until=NOW + 60)
    kid_old = old.key_id
    assert [kid for kid, _ in ring.verification_keys(Purpose.SOURCE_IDENTIFIER, now=NOW)] == [new.key_id, kid_old]
    assert ring.key_by_id(Purpose.SOURCE_IDENTIFIER, kid_old, now=NOW) is not None
    assert ring.key_by_id(Purpose.SOURCE_IDENTIFIER, kid_old, now=NOW + 61) is None
    assert ring.key(Purpose.SOURCE_IDENTIFIER)[0] == new.key_id


def test_key_ids_differ_for_codes_in_the_same_window() -> None:
    assert make(1).label == make(2).label
    assert make(1).key_id != make(2).key_id
