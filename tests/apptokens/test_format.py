from __future__ import annotations

import hmac
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenward.apptokens import format as fmt
from tokenward.errors import Unauthorized
from tokenward.keys import Secret


def test_generated_tokens_parse_back_and_have_the_documented_shape() -> None:
    token, parsed = fmt.generate()
    assert token.startswith("twa_") and len(token) == fmt.TOKEN_LENGTH == 45
    again = fmt.parse(token)
    assert again.id == parsed.id and again.secret.equals(parsed.secret)
    assert again.prefix == "twa_" + parsed.id
    assert token[4 + 12 + 1 :] not in repr(again)


def test_tokens_are_unique() -> None:
    assert len({fmt.generate()[0] for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda t: t[:-1], "apptoken_malformed"),
        (lambda t: t + "A", "apptoken_malformed"),
        (lambda t: "twb_" + t[4:], "apptoken_malformed"),
        (lambda t: t.replace("_", "-"), "apptoken_malformed"),
        (lambda t: "x" * 10_000, "apptoken_malformed"),
        (lambda t: "", "apptoken_malformed"),
        (lambda t: t[:20] + ("B" if t[20] != "B" else "C") + t[21:], "apptoken_checksum"),
    ],
)
@pytest.mark.parametrize("split", [fmt.parse, fmt.split])
def test_bad_tokens_are_refused_before_lookup(mutate: object, code: str, split: object) -> None:
    token, _ = fmt.generate()
    assert callable(mutate) and callable(split)
    with pytest.raises(Unauthorized) as info:
        split(mutate(token))
    assert info.value.error_code == code


def test_split_gives_the_id_and_the_secret_as_text() -> None:
    token, parsed = fmt.generate()
    assert fmt.split(token) == (parsed.id, parsed.secret.reveal().decode())


@given(st.integers(min_value=17, max_value=44), st.sampled_from(fmt.ALPHABET))
def test_any_single_character_typo_in_id_or_secret_or_check_is_caught(position: int, char: str) -> None:
    token, _ = fmt.generate()
    if token[position] == char:
        return
    with pytest.raises(Unauthorized):
        fmt.parse(token[:position] + char + token[position + 1 :])


def test_hash_binds_the_secret_to_its_id_and_key() -> None:
    key = Secret(b"k" * 32)
    secret = Secret(b"s" * 22)
    h = fmt.hash_secret(key, "A" * 12, secret)
    assert len(h) == 64
    assert h != fmt.hash_secret(key, "B" * 12, secret)
    assert h != fmt.hash_secret(Secret(b"j" * 32), "A" * 12, secret)
    assert fmt.key_id(key) != fmt.key_id(Secret(b"j" * 32))


def test_is_token_id() -> None:
    assert fmt.is_token_id("abcDEF012345")
    assert not fmt.is_token_id("abc")
    assert not fmt.is_token_id("abcDEF01234_")


@given(st.binary(max_size=200), st.text(alphabet=fmt.ALPHABET, min_size=12, max_size=12), st.binary(max_size=40))
def test_hash_is_hmac_sha256_of_the_label_id_and_secret(key: bytes, token_id: str, secret: bytes) -> None:
    # The HMAC resumes from precomputed pad states: it must stay the standard one (stored hashes depend on it),
    # for keys shorter, as long as and longer than SHA-256's 64-byte block.
    message = b"tokenward/apptoken/v1\x00" + token_id.encode() + b"\x00" + secret
    expected = hmac.digest(key, message, "sha256").hex()
    assert fmt.hash_secret(Secret(key), token_id, Secret(secret)) == expected
    assert fmt.hash_secret(Secret(key), token_id, Secret(secret)) == expected  # the shared states are not consumed


@given(st.text(alphabet=fmt.ALPHABET + "_", max_size=60))
def test_checksum_is_crc32_in_six_base62_digits(body: str) -> None:
    value, digits = zlib.crc32(body.encode()), []
    for _ in range(6):
        value, digit = divmod(value, 62)
        digits.append(fmt.ALPHABET[digit])
    assert fmt._check(body) == "".join(reversed(digits))
