"""A batch of rows as one JSON document, encoded a slice at a time.

The write-behind flushes (regulation failures, audit events) send their rows as one JSON document (one statement,
no parameter set per row). A flood's second is tens of thousands of rows: encoded at once, that held the event
loop for 5-13 ms, which was the p99 of every request arriving meanwhile. Encoded :data:`SLICE` rows at a time, with
the loop free between slices, no request waits more than one slice's encoding (well under a millisecond).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from itertools import islice

__all__ = ["SLICE", "json_rows"]

SLICE = 2_000


async def json_rows(rows: Iterable[object]) -> str:
    """``json.dumps(list(rows))``, yielding to the event loop between slices of :data:`SLICE` rows (tuples become
    arrays, as with ``json.dumps``). ``rows`` may be lazy: each slice is built only when it is encoded."""
    it = iter(rows)
    parts: list[str] = []
    while chunk := list(islice(it, SLICE)):
        if parts:
            await asyncio.sleep(0)
        parts.append(json.dumps(chunk)[1:-1])
    return "[" + ", ".join(parts) + "]"
