"""storage/jsonrows.py: a flush's rows as one JSON document, encoded a slice at a time."""

from __future__ import annotations

import asyncio
import json

import pytest

from tokenward.storage.jsonrows import SLICE, json_rows


@pytest.mark.parametrize("count", [0, 1, SLICE - 1, SLICE, SLICE + 1, 3 * SLICE + 7])
async def test_the_document_is_what_one_dumps_would_write(count: int) -> None:
    rows = [(f"ip:10.0.{i // 256}.{i % 256}", 1_800_000_000_000_000 + i, None, 'é"\\') for i in range(count)]
    assert await json_rows(rows) == json.dumps(rows)
    assert json.loads(await json_rows(iter(rows))) == [list(row) for row in rows]  # lazy rows too


async def test_the_event_loop_runs_between_slices() -> None:
    ticks = 0

    async def other_work() -> None:  # a request arriving during the flush
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    started = ticks
    await json_rows(range(3 * SLICE))  # three slices: the loop is free twice between them
    during = ticks - started
    task.cancel()
    assert during >= 2
    started = ticks
    await json_rows(range(SLICE))  # one slice: encoded at once, nothing else runs meanwhile
    assert ticks == started
