"""Builders for app token tests: a fake clock and a service on in-memory or SQL stores.

Services built on one ``shared`` set of stores are instances of one deployment: each has its own
:class:`ChangeFeed` on the shared change log (in memory: the store's :class:`InMemoryChangeLog`; SQL: the
``change_log`` table); ``await service.feed.poll()`` is that instance's next poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tokenward.apptokens import AppTokenConfig, AppTokenService, RegulationPolicy, Regulator
from tokenward.apptokens.access import AdminCheck, no_admins
from tokenward.changefeed import ChangeFeed
from tokenward.keys import Secret
from tokenward.storage import (
    AppTokenStore,
    AuditLog,
    Database,
    InMemoryAppTokenStore,
    InMemoryAuditLog,
    InMemoryRegulationStore,
    RegulationStore,
    SqlAppTokenStore,
    SqlAuditLog,
    SqlRegulationStore,
)
from tokenward.storage.changes import ChangeLog, InMemoryChangeLog, SqlChangeLog

KEY = Secret(bytes(range(32)))
T0 = 1_800_000_000.0


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def stores(db: Database | None) -> tuple[AppTokenStore, AuditLog, RegulationStore]:
    if db is None:
        return InMemoryAppTokenStore(changes=InMemoryChangeLog()), InMemoryAuditLog(), InMemoryRegulationStore()
    return SqlAppTokenStore(db), SqlAuditLog(db), SqlRegulationStore(db)


def change_log(store: AppTokenStore) -> ChangeLog:
    """The change log ``store`` writes to."""
    if isinstance(store, SqlAppTokenStore):
        return SqlChangeLog(store.database)
    changes = store._changes  # type: ignore[attr-defined]
    assert isinstance(changes, InMemoryChangeLog)
    return changes


class RecordingFeed(ChangeFeed):
    """A feed that counts its ``announce`` calls (what a write does after its commit)."""

    announced = 0

    async def announce(self) -> None:
        self.announced += 1
        await super().announce()


def feed_for(store: AppTokenStore, **options: Any) -> RecordingFeed:
    """A feed of ``store``'s change log for one more instance (not started: fresh, until a test starts it)."""
    return RecordingFeed(change_log(store), **options)


def feed_of(service: AppTokenService) -> RecordingFeed:
    feed = service.feed
    assert isinstance(feed, RecordingFeed)
    return feed


def make_service(
    db: Database | None = None,
    *,
    clock: Clock | None = None,
    config: AppTokenConfig | None = None,
    shared: tuple[AppTokenStore, AuditLog, RegulationStore] | None = None,
    is_admin: AdminCheck = no_admins,
    key: Secret = KEY,
    policy: RegulationPolicy | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    feed: ChangeFeed | None = None,
) -> AppTokenService:
    store, audit, regulation = shared or stores(db)
    return AppTokenService(
        store=store,
        feed=feed or feed_for(store),
        audit=audit,
        regulator=Regulator(regulation, policy or RegulationPolicy()),
        key=key,
        config=config or AppTokenConfig(),
        clock=clock or Clock(),
        is_admin=is_admin,
        sleep=sleep or asyncio.sleep,
    )
