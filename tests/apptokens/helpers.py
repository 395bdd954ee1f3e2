"""Builders for app token tests: a fake clock and a service on in-memory or SQL stores."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tokenward.apptokens import AppTokenConfig, AppTokenService, RegulationPolicy, Regulator
from tokenward.apptokens.access import AdminCheck, no_admins
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
        return InMemoryAppTokenStore(), InMemoryAuditLog(), InMemoryRegulationStore()
    return SqlAppTokenStore(db), SqlAuditLog(db), SqlRegulationStore(db)


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
) -> AppTokenService:
    store, audit, regulation = shared or stores(db)
    return AppTokenService(
        store=store,
        audit=audit,
        regulator=Regulator(regulation, policy or RegulationPolicy()),
        key=key,
        config=config or AppTokenConfig(),
        clock=clock or Clock(),
        is_admin=is_admin,
        sleep=sleep or asyncio.sleep,
    )
