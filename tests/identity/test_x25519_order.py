"""Low-order X25519 public keys (RFC 7748 §6.1) are refused as session and authenticator keys (issue 15 #8)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tokenward.identity.client_tokens import b64u_of_public, is_weak_x25519

# The points of order 1, 2, 4 and 8 and their non-canonical encodings (little-endian u-coordinates).
LOW_ORDER = [
    "00" * 32,
    "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ec" + "ff" * 30 + "7f",  # p - 1
    "ed" + "ff" * 30 + "7f",  # p
    "ee" + "ff" * 30 + "7f",  # p + 1
]


@pytest.mark.parametrize("point", LOW_ORDER)
def test_low_order_points_are_weak(point: str) -> None:
    assert is_weak_x25519(bytes.fromhex(point))


def test_generated_keys_are_not_weak() -> None:
    from tokenward.identity.encoding import b64u_decode

    for _ in range(20):
        raw = b64u_decode(b64u_of_public(X25519PrivateKey.generate()), field="k", length=32)
        assert not is_weak_x25519(raw)
