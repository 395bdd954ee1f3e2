"""Lifetimes as people write them (app tokens, settings): the oCIS forms (``72h``, ``30m``, ``1h30m``,
``45s``) plus days and weeks.

``parse_duration("1h30m") == timedelta(hours=1, minutes=30)``. Zero, negative, unknown units
(``1y``) and anything unparsable raise :class:`BadRequest` (code ``expiry_invalid``) with a
message that shows valid examples; a lifetime above the configured maximum raises
``expiry_too_long``.
"""

from __future__ import annotations

import re
from datetime import timedelta

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest

__all__ = ["EXAMPLES", "Duration", "check_expiry", "format_duration", "parse_duration", "written"]

EXAMPLES = "72h, 30m, 1h30m, 45s, 7d or 2w"
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d{1,9})([wdhms])")
_WHOLE = re.compile(r"^(?:\d{1,9}[wdhms])+$")
_MAX_INPUT = 64


class Duration(timedelta):
    """A :class:`timedelta` that remembers how it was written (``400d``), so messages quote the user's words."""

    text: str

    def __new__(cls, seconds: int, text: str) -> Duration:
        value = super().__new__(cls, seconds=seconds)
        value.text = text
        return value

    def __reduce__(self) -> tuple[type[Duration], tuple[int, str]]:  # copy and pickle keep the text
        return (Duration, (int(self.total_seconds()), self.text))


def written(value: timedelta) -> str:
    """How ``value`` was written, or its shortest form when it was computed."""
    return value.text if isinstance(value, Duration) else format_duration(value)


def parse_duration(text: str) -> Duration:
    """Parse a positive duration such as ``72h`` or ``1h30m``; units w, d, h, m, s, each at most once, largest first."""
    value = text.strip().lower()
    if len(value) > _MAX_INPUT or not _WHOLE.match(value):
        raise BadRequest(
            f"expiry {text[:_MAX_INPUT]!r} is not a duration; use e.g. {EXAMPLES}", code=ErrorCode.EXPIRY_INVALID
        )
    units = [unit for _, unit in _PART.findall(value)]
    order = list(_UNITS)
    if len(set(units)) != len(units) or units != sorted(units, key=order.index):
        raise BadRequest(
            f"expiry {text!r}: give each unit once, largest first (e.g. 1h30m); valid: {EXAMPLES}",
            code=ErrorCode.EXPIRY_INVALID,
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value))
    if seconds <= 0:
        raise BadRequest(
            f"expiry {text!r} must be longer than zero; use e.g. {EXAMPLES}", code=ErrorCode.EXPIRY_INVALID
        )
    return Duration(seconds, value)


def check_expiry(lifetime: timedelta, maximum: timedelta) -> timedelta:
    """Return ``lifetime`` or raise ``expiry_too_long`` when it exceeds ``maximum``."""
    if lifetime > maximum:
        raise BadRequest(
            f"expiry {written(lifetime)} is longer than the maximum of {written(maximum)} "
            "(TOKENWARD_APP_TOKENS_MAX_EXPIRY)",
            code=ErrorCode.EXPIRY_TOO_LONG,
        )
    return lifetime


def format_duration(value: timedelta) -> str:
    """The shortest form :func:`parse_duration` reads back, e.g. ``1d2h``."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
