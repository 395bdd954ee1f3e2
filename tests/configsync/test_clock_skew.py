"""Clock skew between instances within the documented tolerance (docs/multi-instance.md).

Time codes carry no validity window of their own: skew only moves the expiry comparisons each
instance makes with its own clock. A source identifier issued on A is judged on B, whose clock
is 30 s ahead or behind; it is accepted, and refused once B's clock passes its expiry.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenward.errors import TokenwardError
from tokenward.identity.source import open_source_identifier
from tokenward.keys import Keyring, Secret, TimeCode

VECTOR = json.loads((Path(__file__).parents[1] / "identity" / "vectors" / "source_identifier.json").read_text())
TOLERANCE = 30.0  # seconds, docs/multi-instance.md "Clock skew"


@pytest.mark.parametrize("skew", [-TOLERANCE, TOLERANCE])
def test_a_source_identifier_from_a_is_judged_alike_by_b_with_a_skewed_clock(skew: float) -> None:
    keyring = Keyring(TimeCode.parse(VECTOR["timecode"]))
    token, issued, expires = VECTOR["source_identifier"], VECTOR["identity"]["iat"], VECTOR["identity"]["exp"]
    b_now = issued + skew + 1  # B reads it one second after A issued it, by B's clock
    assert open_source_identifier(token, keyring=keyring, now=b_now).subject == "alice@example.com"
    # B refuses it when *its* clock reaches the expiry: the session is longer or shorter by the skew only
    with pytest.raises(TokenwardError) as caught:
        open_source_identifier(token, keyring=keyring, now=expires)
    assert caught.value.error_code == "source_identifier_expired"


def test_the_previous_time_code_grace_moves_by_the_skew_only() -> None:
    old = TimeCode.parse(VECTOR["timecode"])
    new = TimeCode(label=old.label + 15, secret=Secret(b"\x07" * 32))
    until = VECTOR["now"] + 3600.0  # the grace end shipped in timecode.json by the rotating instance
    keyring = Keyring(new, old, previous_until=until)
    token = VECTOR["source_identifier"]
    real = until - TOLERANCE / 2  # the same instant on A (true clock) and on B (30 s ahead)
    assert open_source_identifier(token, keyring=keyring, now=real).subject == "alice@example.com"
    with pytest.raises(TokenwardError) as caught:
        open_source_identifier(token, keyring=keyring, now=real + TOLERANCE)
    # B ends the grace 30 s early, with the clear code; nothing is accepted late
    assert caught.value.error_code == "timecode_mismatch"
