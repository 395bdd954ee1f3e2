"""Brute-force regulation: count failed credential checks, ban, answer 429 while banned.

Keys come in two kinds (docs/regulation.md):

- **hard** keys — the client address (:func:`ip_key`) and the (account, address) pair
  (:func:`pair_key`): ``max_failures`` within ``find_time`` ban them for ``ban_time``; a
  banned hard key is refused whoever presents it. Nobody can ban an address but its own user.
- **soft** keys — the account (:func:`user_key`): counted too, and banned at
  ``soft_max_failures`` (None: never), but a ban on them is *not* a lockout: the caller
  decides what it costs — a delay on failures (app tokens), or a refusal only for browsers
  that never signed in as that account (captchas; a signed device cookie exempts the others).

Defaults follow Authelia's: 3 failures within 2 minutes ban for 5 minutes. Failures and bans are stored through a
:class:`~tokenward.storage.RegulationStore` (SQL: shared by every instance). Each instance keeps
a snapshot of active bans and refreshes it at most once per ``sync_seconds``, so checking a
ban on the hot path is a dict lookup, and a ban made elsewhere is honoured within that time.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from tokenward.errorcodes import ErrorCode
from tokenward.errors import StorageError, TooManyRequests
from tokenward.storage.regulation import KEY_LEN, RegulationStore

__all__ = ["RegulationPolicy", "Regulator", "client_key", "ip_key", "pair_key", "user_key"]

log = logging.getLogger("tokenward.regulation")

_PURGE_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class RegulationPolicy:
    max_failures: int = 3
    find_time: float = 120.0
    ban_time: float = 300.0
    #: Failures of a soft key (an account) within ``find_time`` that mark it banned; None: never.
    soft_max_failures: int | None = None

    @property
    def enabled(self) -> bool:
        return self.ban_time > 0


def _key(kind: str, value: str) -> str:
    key = f"{kind}:{value.lower()}"
    if len(key) > KEY_LEN:  # long user names are hashed, never truncated into a collision
        key = f"{kind}#" + hashlib.sha256(value.lower().encode("utf-8", "surrogatepass")).hexdigest()
    return key


def user_key(user: str) -> str:
    return _key("user", user)


def ip_key(ip: str) -> str:
    return _key("ip", ip)


def pair_key(user: str, ip: str | None) -> str:
    """The (account, address) key: failures from one address against one account."""
    return _key("pair", f"{user}|{ip or '-'}")


def client_key(client_id: str) -> str:
    """An OAuth client (OpenID Provider token endpoint)."""
    return _key("client", client_id)


class Regulator:
    """Decides and records; ``now`` is always passed in as Unix seconds."""

    def __init__(self, store: RegulationStore, policy: RegulationPolicy, *, sync_seconds: float = 1.0) -> None:
        self.store = store
        self.policy = policy
        self.sync_seconds = sync_seconds
        self._bans: dict[str, float] = {}
        self._synced_at = -math.inf
        self._purged_at = -math.inf

    @property
    def has_bans(self) -> bool:
        """Whether the local snapshot holds any ban (the hot path skips :meth:`check` otherwise)."""
        return bool(self._bans)

    def check(self, keys: tuple[str, ...], now: float) -> None:
        """Raise :class:`TooManyRequests` when any key is banned in the local snapshot."""
        if not self._bans:
            return
        until = max((self._bans.get(k, 0.0) for k in keys), default=0.0)
        if until > now:
            raise TooManyRequests(
                "too many failed attempts; try again later",
                code=ErrorCode.TOO_MANY_ATTEMPTS,
                retry_after=math.ceil(until - now),
            )

    def banned(self, key: str, now: float) -> bool:
        """Whether ``key`` is banned in the local snapshot (for soft keys, whose ban the caller interprets)."""
        return self._bans.get(key, 0.0) > now

    def needs_sync(self, now: float) -> bool:
        return self.policy.enabled and now - self._synced_at >= self.sync_seconds

    async def sync(self, now: float) -> None:
        """Refresh the ban snapshot from the store (one query). Keeps the old snapshot if the store fails."""
        self._synced_at = now
        try:
            bans = await self.store.active_bans(_dt(now))
        except StorageError as exc:
            log.warning("cannot refresh the ban list: %s", exc.detail)
            return
        self._bans = {key: until.timestamp() for key, until in bans.items()}

    async def failure(self, keys: tuple[str, ...], now: float, *, soft: tuple[str, ...] = ()) -> list[str]:
        """Record a failure for every key (hard ``keys`` and ``soft`` ones); ban those that reached their limit.
        Returns the newly banned keys."""
        if not self.policy.enabled or not (keys or soft):
            return []
        at = _dt(now)
        counts = await self.store.record_failure((*keys, *soft), at, since=_dt(now - self.policy.find_time))
        limits = {key: self.policy.max_failures for key in keys}
        if self.policy.soft_max_failures is not None:
            limits.update(dict.fromkeys(soft, self.policy.soft_max_failures))
        banned = [key for key, count in counts.items() if key in limits and count >= limits[key]]
        until = now + self.policy.ban_time
        for key in banned:
            if self._bans.get(key, 0.0) < until:
                await self.store.add_ban(key, at, _dt(until))
                self._bans[key] = until
        if now - self._purged_at >= _PURGE_EVERY:
            self._purged_at = now
            await self.store.purge(failures_before=_dt(now - self.policy.find_time), bans_before=_dt(now))
        return banned


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
