"""App token verification benchmark: warm (memory) and cold (database) checks; oCIS bcrypt side by side.

    .venv/bin/python bench/apptokens.py             # SQLite, and PostgreSQL when reachable
    .venv/bin/python bench/apptokens.py --quick
    .venv/bin/python bench/apptokens.py --memory    # bytes per record held in memory, per id in the filter

- **warm**: ``await service.verify(user, token)`` with the record in the in-process cache: one
  dict lookup, one HMAC-SHA256, two constant-time compares, the ban-snapshot check. The ban
  list refresh (one query per second) and last_used_at writes (one per minute) are included.
- **cold**: the cached record is dropped before every call, so each verification reads the
  token row by primary key. SQL statements are counted with a SQLAlchemy event.
- **memory**: 100,000 tokens of 10,000 users inserted in SQLite, read back as the service reads them
  and held as it holds them (``MemoryCache`` of packed records, fingerprint included); tracemalloc counts
  the bytes.
  The figures behind ``RECORD_BYTES`` and ``KNOWN_ID_BYTES`` in ``apptokens/cache.py``.
- **bcrypt**: ``bcrypt.checkpw`` at cost 11, the oCIS auth-app scheme, which compares the
  presented password with *every* token of the user one by one.

Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import event, insert

from tokenward.apptokens import AppTokenConfig, AppTokenService, RegulationPolicy, Regulator
from tokenward.apptokens import format as token_format
from tokenward.apptokens.cache import MemoryCache
from tokenward.apptokens.known import KnownIds
from tokenward.changefeed import ChangeFeed
from tokenward.keys import Secret
from tokenward.storage import Database, SqlAppTokenStore, SqlAuditLog, SqlRegulationStore
from tokenward.storage.apptokens import AppTokenRow, pack
from tokenward.storage.changes import SqlChangeLog

USER = "alice@example.com"
POSTGRES_ADMIN = os.environ.get("TOKENWARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def bench_backend(name: str, url: str, *, warm_n: int, cold_n: int) -> dict[str, float]:
    db = Database.connect(url)
    await db.upgrade()
    service = AppTokenService(
        store=SqlAppTokenStore(db),
        feed=ChangeFeed(SqlChangeLog(db)),
        audit=SqlAuditLog(db),
        regulator=Regulator(SqlRegulationStore(db), RegulationPolicy()),
        key=Secret(secrets.token_bytes(32)),
        config=AppTokenConfig(),
    )
    # A realistic table: 10,000 tokens of 1,000 users, then ours.
    for i in range(1000):
        for _ in range(10):
            await service.create(owner=f"user{i}@example.com", created_by="bench")
    record, token = await service.create(owner=USER, created_by="bench")
    await service.verify(USER, token)

    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)

    # warm
    for _ in range(1000):
        await service.verify(USER, token)
    statements = 0
    start = time.perf_counter()
    for _ in range(warm_n):
        await service.verify(USER, token)
    warm = time.perf_counter() - start
    warm_statements = statements

    # cold
    samples = []
    statements = 0
    for _ in range(cold_n):
        service.forget(record.id)
        t0 = time.perf_counter()
        await service.verify(USER, token)
        samples.append(time.perf_counter() - t0)
    cold_statements = statements / cold_n
    event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    await db.close()
    samples.sort()
    return {
        "warm_us": warm / warm_n * 1e6,
        "warm_rate": warm_n / warm,
        "warm_statements": float(warm_statements),
        "warm_seconds": warm,
        "cold_median_us": statistics.median(samples) * 1e6,
        "cold_p99_us": samples[int(len(samples) * 0.99) - 1] * 1e6,
        "cold_statements": cold_statements,
    }


async def bench_memory(url: str, *, tokens: int = 100_000, owners: int = 10_000) -> tuple[float, float]:
    """(bytes per record held, bytes per id in the known-id filter), measured with tracemalloc."""
    import gc
    import tracemalloc
    from datetime import UTC, datetime, timedelta

    db = Database.connect(url)
    await db.upgrade()
    now = datetime.now(UTC)
    rows = []
    for i in range(tokens):
        _, parsed = token_format.generate()
        rows.append(
            {
                "id": parsed.id,
                "owner": f"user{i % owners}@example.com",
                "label": f"sync client {i}",
                "scopes": ["tokenward:manage"],
                "secret_hash": secrets.token_hex(32),
                "key_id": "0123456789abcdef",
                "created_at": now,
                "expires_at": now + timedelta(days=30),
                "created_by": f"user{i % owners}@example.com",
                "last_used_at": now,
                "revoked_at": None,
            }
        )
    async with db.engine.begin() as conn:
        await conn.execute(insert(AppTokenRow), rows)
    del rows
    store = SqlAppTokenStore(db)
    key = secrets.token_bytes(32)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache: MemoryCache[str, object] = MemoryCache(capacity=tokens)
    for record in await store.list():  # the same row-to-record conversion as a read by id
        fingerprint = hashlib.blake2b(record.id.encode(), key=key, digest_size=32).digest()
        cache.put(record.id, (*pack(record), fingerprint))
    held = tracemalloc.get_traced_memory()[0] - before
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    ids = KnownIds(await store.known_ids())  # the set of strings read is gone once the filter is built
    gc.collect()
    known = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(cache) == tokens and len(ids) == tokens
    await db.close()
    return held / tokens, known / tokens


def bench_bcrypt(n: int) -> float:
    try:
        import bcrypt
    except ImportError:
        return float("nan")
    password = secrets.token_urlsafe(12).encode()
    hashed = bcrypt.hashpw(password, bcrypt.gensalt(rounds=11))
    start = time.perf_counter()
    for _ in range(n):
        bcrypt.checkpw(password, hashed)
    return (time.perf_counter() - start) / n * 1e6


def postgres_url() -> tuple[str, str] | None:
    try:
        import psycopg
    except ImportError:
        return None
    name = f"tw_bench_{os.getpid()}"
    try:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        return None
    base = POSTGRES_ADMIN.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def drop_postgres(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--memory", action="store_true", help="bytes per record held and per known id, then exit")
    args = parser.parse_args()
    if args.memory:
        with tempfile.TemporaryDirectory() as tmp:
            per_record, per_id = asyncio.run(bench_memory(f"sqlite:///{Path(tmp) / 'bench.db'}"))
        print(f"Python {sys.version.split()[0]}; 100,000 app tokens of 10,000 users, read from SQLite")
        print(f"held in memory (record, expiry, fingerprint, cache slot): {per_record:,.0f} bytes per token")
        print(f"  = {per_record * 100_000 / 2**20:,.1f} MB per 100,000 tokens")
        print(f"known-id filter: {per_id:,.0f} bytes per id = {per_id * 100_000 / 2**20:,.1f} MB per 100,000 ids")
        return
    warm_n, cold_n, bcrypt_n = (50_000, 500, 5) if args.quick else (300_000, 3000, 20)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = asyncio.run(
            bench_backend("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", warm_n=warm_n, cold_n=cold_n)
        )
    pg = postgres_url()
    if pg is not None:
        try:
            results["postgresql"] = asyncio.run(bench_backend("postgresql", pg[1], warm_n=warm_n, cold_n=cold_n))
        finally:
            drop_postgres(pg[0])
    else:
        print("PostgreSQL not reachable: skipped", file=sys.stderr)
    bcrypt_us = bench_bcrypt(bcrypt_n)

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; 10,001 tokens in the table")
    print()
    print(
        "| backend | warm µs/check | warm checks/s | SQL stmts in warm run "
        "| cold median µs | cold p99 µs | SQL stmts/cold check |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['warm_us']:.2f} | {r['warm_rate']:,.0f} "
            f"| {r['warm_statements']:.0f} in {r['warm_seconds']:.1f} s "
            f"| {r['cold_median_us']:,.0f} | {r['cold_p99_us']:,.0f} | {r['cold_statements']:.2f} |"
        )
    print()
    warm = results["sqlite"]["warm_us"]
    print(f"bcrypt cost 11 (oCIS), one checkpw: {bcrypt_us:,.0f} µs — {bcrypt_us / warm:,.0f}x a warm tokenward check")
    print(f"oCIS with 10 tokens per user compares up to 10 hashes: up to {bcrypt_us * 10 / 1000:,.0f} ms per request")


if __name__ == "__main__":
    main()
