from __future__ import annotations

from datetime import timedelta

import pytest

from tokenward.durations import check_expiry, format_duration, parse_duration
from tokenward.errors import BadRequest


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("72h", 72 * 3600),
        ("30m", 1800),
        ("1h30m", 5400),
        ("45s", 45),
        ("1s", 1),
        ("7d", 7 * 86400),
        ("2w", 1209600),
        ("1d2h3m4s", 93784),
        (" 1H ", 3600),
    ],
)
def test_valid_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0", "0h", "-1h", "1y", "abc", "", "h", "1.5h", "30m1h", "1h1h", "9" * 70 + "s"])
def test_invalid_durations_show_an_example(text: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_duration(text)
    assert info.value.error_code == "expiry_invalid"
    assert "72h" in info.value.detail or "1h30m" in info.value.detail


def test_maximum_is_enforced() -> None:
    with pytest.raises(BadRequest) as info:
        check_expiry(timedelta(days=400), timedelta(days=365))
    assert info.value.error_code == "expiry_too_long"
    assert check_expiry(timedelta(days=1), timedelta(days=365)) == timedelta(days=1)


def test_too_long_names_both_durations_as_written() -> None:
    with pytest.raises(BadRequest) as info:
        check_expiry(parse_duration(" 400D "), parse_duration("365d"))
    assert "expiry 400d is longer than the maximum of 365d" in str(info.value)
    # Computed durations (no text) are shown in their shortest form.
    with pytest.raises(BadRequest) as info:
        check_expiry(timedelta(days=8), timedelta(days=7))
    assert "expiry 1w1d is longer than the maximum of 1w" in str(info.value)


def test_a_parsed_duration_behaves_as_a_timedelta() -> None:
    value = parse_duration("1h30m")
    assert value == timedelta(minutes=90) and value + timedelta(minutes=30) == timedelta(hours=2)
    assert value.total_seconds() == 5400


@pytest.mark.parametrize("seconds", [1, 59, 3600, 5400, 93784, 1209600])
def test_format_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)
