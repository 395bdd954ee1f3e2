"""The docs/keys.md test vector, checked with an independent RFC 5869 HKDF."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from tokenward.keys import Purpose, Secret, TimeCode, derive_key

DOC = Path(__file__).resolve().parents[2] / "docs" / "keys.md"


def _vector() -> dict[str, str]:
    match = re.search(r"```vector\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert match is not None, "docs/keys.md has no ```vector block"
    return dict(line.split(" = ", 1) for line in match.group(1).strip().splitlines())


def _rfc5869(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def test_vector_format_and_key_id() -> None:
    v = _vector()
    code = TimeCode(label=int(v["label"]), secret=Secret(bytes.fromhex(v["secret"])))
    assert code.format() == v["timecode"]
    assert TimeCode.parse(v["timecode"]).secret.equals(bytes.fromhex(v["secret"]))
    assert code.key_id == v["key_id"]


def test_vector_every_purpose_is_listed_and_matches() -> None:
    v = _vector()
    code = TimeCode.parse(v["timecode"])
    assert {p.value for p in Purpose} <= set(v), "docs/keys.md must list every purpose"
    for purpose in Purpose:
        expected = _rfc5869(
            bytes.fromhex(v["secret"]), f"tokenward/v1/{v['label']}".encode(), f"tokenward/v1/{purpose.value}".encode()
        )
        assert expected.hex() == v[purpose.value]
        assert derive_key(code, purpose).reveal() == expected


def test_purposes_get_distinct_keys() -> None:
    code = TimeCode.parse(_vector()["timecode"])
    keys = {derive_key(code, p).reveal() for p in Purpose}
    assert len(keys) == len(Purpose)
