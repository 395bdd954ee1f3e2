"""The /admin/audit page's filters and paging cursor, parsed from its query string (no I/O).

``actor`` and ``action`` match exactly; ``since`` is inclusive and ``until`` exclusive, each a
date (``2026-01-31``) or a date and time (``2026-01-31T12:00``, UTC unless it names a zone); a
bare ``until`` date means through the end of that day. ``before`` is the paging cursor the page's
"Older" link carries: ``<microseconds since 1970>-<event id>``. Bad input raises
:class:`BadRequest` with a sentence the page shows beside the form.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest
from tokenward.storage.audit import AuditEvent, Cursor, format_cursor, parse_cursor

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "AuditFilters", "cursor_of", "parse_filters"]

DEFAULT_PAGE = 50
MAX_PAGE = 500
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LIMITS = {"actor": 320, "action": 100, "since": 32, "until": 32, "limit": 8, "before": 64}


@dataclasses.dataclass(frozen=True, slots=True)
class AuditFilters:
    """What the page lists: the text as typed (for the form) and the parsed values (for the query)."""

    actor: str = ""
    action: str = ""
    since_text: str = ""
    until_text: str = ""
    limit: int = DEFAULT_PAGE
    since: datetime | None = None
    until: datetime | None = None
    before: Cursor | None = None

    def form(self) -> dict[str, object]:
        return {
            "actor": self.actor,
            "action": self.action,
            "since": self.since_text,
            "until": self.until_text,
            "limit": self.limit,
        }

    def older_link(self, last: AuditEvent) -> str:
        """The URL of the page after ``last``, with the same filters."""
        query = {key: value for key, value in self.form().items() if value not in ("", DEFAULT_PAGE)}
        return "/admin/audit?" + urlencode({**query, "before": cursor_of(last)})


def cursor_of(event: AuditEvent) -> str:
    return format_cursor(event)


def _time(text: str, name: str, *, end_of_day: bool = False) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"{name}: {text!r} is not a date like 2026-01-31 or 2026-01-31T12:00", code=ErrorCode(f"invalid_{name}")
        ) from None
    value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if end_of_day and _DATE_ONLY.match(text):
        value += timedelta(days=1)
    return value


def _cursor(text: str) -> Cursor | None:
    if not text:
        return None
    try:
        return parse_cursor(text)
    except ValueError:
        raise BadRequest(
            "this paging link is broken; start again from the newest events", code=ErrorCode.INVALID_CURSOR
        ) from None


def parse_filters(params: Mapping[str, str]) -> AuditFilters:
    """The filters in ``params`` (a query string); BadRequest naming the field for bad input."""
    text = {name: params.get(name, "").strip() for name in _LIMITS}
    for name, limit in _LIMITS.items():
        if len(text[name]) > limit:
            raise BadRequest(f"{name}: at most {limit} characters", code=ErrorCode(f"invalid_{name}"))
    limit_text = text["limit"] or str(DEFAULT_PAGE)
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE:
        raise BadRequest(f"show: a number of events between 1 and {MAX_PAGE}", code=ErrorCode.INVALID_LIMIT)
    since = _time(text["since"], "since")
    until = _time(text["until"], "until", end_of_day=True)
    if since is not None and until is not None and until <= since:
        raise BadRequest(
            "until must be after since (since is inclusive, until exclusive)", code=ErrorCode.INVALID_UNTIL
        )
    return AuditFilters(
        actor=text["actor"],
        action=text["action"],
        since_text=text["since"],
        until_text=text["until"],
        limit=int(limit_text),
        since=since,
        until=until,
        before=_cursor(text["before"]),
    )
