"""SQL statements per second that failed credential checks cost, per instance: before and after issue 13.

A flood of wrong app tokens, each from a new address for a new user name (three regulation keys and one
``apptoken.verify_failed`` audit event per failure, as ``AppTokenService._failed`` records them), at several
rates over 10 simulated seconds, on a real database:

- **before**: what the request path did until issue 13, per failure: ``record_failure`` (INSERT + grouped
  count, one transaction) and an audit INSERT (its own transaction);
- **after**: ``Regulator.failure`` (memory only) and ``BufferedAuditLog.note``, then once a simulated
  second ``Regulation.flush`` and ``BufferedAuditLog.flush``, as a serving process does (the longest of those
  flushes, wall time, is printed too: on the event loop it is what a request can wait behind).

Statements are ``Database.statements`` (``tokenward_sql_statements_total``: every statement and every
COMMIT/ROLLBACK). Time is simulated (the clock is passed in), so the counts do not depend on the machine;
the wall time of the work is printed beside them for scale. "before" runs the first simulated second
only at the higher rates (its count grows linearly with the rate; the per-failure figure is exact).

    .venv/bin/python bench/regulation_flood.py [--database sqlite|postgresql|mariadb]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.storage.servers import fresh_database_url

from tokenward.apptokens.regulation import Regulation, RegulationPolicy, hard_keys, user_key
from tokenward.storage import AuditEvent, Database, SqlAuditLog, SqlRegulationStore
from tokenward.storage.audit import BufferedAuditLog

POLICY = RegulationPolicy(max_failures=3, find_time=120.0, ban_time=300.0, soft_max_failures=10)
SECONDS = 10
RATES = (10, 100, 1_000, 5_000)
T0 = 1_800_000_000.0


def _failure(i: int) -> tuple[tuple[str, ...], tuple[str, ...], AuditEvent]:
    ip = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
    user = f"nobody{i}@example.com"
    event = AuditEvent(
        at=datetime.fromtimestamp(T0, UTC),
        actor=user,
        action="apptoken.verify_failed",
        subject=user,
        detail={"reason": "unknown", "ip": ip},
    )
    return hard_keys(user, ip), (user_key(user),), event


async def before(db: Database, rate: int, seconds: int) -> tuple[int, float]:
    store, audit = SqlRegulationStore(db), SqlAuditLog(db)
    start, sent = time.perf_counter(), db.statements
    for second in range(seconds):
        now = T0 + second
        for i in range(rate):
            hard, soft, event = _failure(second * rate + i)
            at = datetime.fromtimestamp(now, UTC)
            await store.record_failure((*hard, *soft), at, since=datetime.fromtimestamp(now - 120, UTC))
            await audit.append(event)
    return db.statements - sent, time.perf_counter() - start


async def after(db: Database, rate: int, seconds: int) -> tuple[int, float, float, float]:
    regulation = Regulation(SqlRegulationStore(db))
    regulator = regulation.regulator(POLICY)
    audit = BufferedAuditLog(SqlAuditLog(db))
    start, sent, request_path, longest = time.perf_counter(), db.statements, 0.0, 0.0
    for second in range(seconds):
        now = T0 + second
        begun, mark = time.perf_counter(), db.statements
        for i in range(rate):
            hard, soft, event = _failure(10_000_000 + second * rate + i)
            regulator.failure(hard, now + i / rate, soft=soft)
            await audit.note(
                now + i / rate,
                actor=event.actor,
                action=event.action,
                subject=event.subject,
                detail=event.detail,
            )
        request_path += time.perf_counter() - begun
        assert db.statements == mark, "a failure sent a statement on its request"
        flushing = time.perf_counter()
        await regulation.flush(now + 1)
        await audit.flush()
        longest = max(longest, time.perf_counter() - flushing)
    return db.statements - sent, time.perf_counter() - start, request_path, longest


async def run(database: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, fresh_database_url(database, Path(tmp)) as url:
        async with Database.connect(url) as db:
            await db.upgrade()
            print(f"{database}: a new address and user name per failure, {SECONDS} simulated seconds per rate")
            print()
            print(
                "| failures/s | before: SQL stmts/s | before: per failure | after: SQL stmts/s | after: wall s "
                "| after: longest flush ms |"
            )
            print("|---:|---:|---:|---:|---:|---:|")
            for rate in RATES:
                seconds_before = SECONDS if rate <= 100 else 1
                count, _ = await before(db, rate, seconds_before)
                count_after, wall, _, longest = await after(db, rate, SECONDS)
                print(
                    f"| {rate:,} | {count / seconds_before:,.0f} | {count / (rate * seconds_before):.1f} | "
                    f"{count_after / SECONDS:.1f} | {wall:.2f} | {longest * 1000:.0f} |"
                )
            print()
            print("target (issue 13): <= 10 SQL statements/s per instance whatever the failure rate; the change")
            print("feed's polls (5/s, one statement each) come on top, the purge (two DELETEs) once a minute")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "mariadb"), default="sqlite")
    asyncio.run(run(parser.parse_args().database))


if __name__ == "__main__":
    main()
