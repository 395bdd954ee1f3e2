"""Brute-force regulation: count failed credential checks, ban, answer 429 while banned.

Keys come in two kinds (docs/regulation.md):

- **hard** keys (:func:`hard_keys`) — the client address (:func:`ip_key`), or, for a check with no
  client address, the (account, no address) pair (:func:`pair_key`): ``max_failures`` within
  ``find_time`` ban them for ``ban_time``; a banned hard key is refused whoever presents it. Nobody
  can ban an address but its own user.
- **soft** keys — the account (:func:`user_key`): counted too, and banned at
  ``soft_max_failures`` (None: never), but a ban on them is *not* a lockout: the caller
  decides what it costs — a delay on failures (app tokens), or a refusal only for browsers
  that never signed in as that account (captchas; a signed device cookie exempts the others).

Defaults follow Authelia's: 3 failures within 2 minutes ban for 5 minutes.

Nothing here awaits the store on the request path. :meth:`Regulator.failure` counts in memory and
bans at once when this instance's own count (or the shared count from the last flush plus what this
instance saw since) reaches the limit; it queues the failure, and :meth:`Regulation.flush` (once a
second in a serving process, and on close) writes every queued failure and ban of every regulator
in one batch to the shared :class:`~tokenward.storage.RegulationStore` (SQL: every instance's); the
counts it returns — all instances' — ban the keys that reached their limit across instances. The
bans every regulator checks are one in-memory snapshot per :class:`Regulation`, kept current by the
change feed (SQL) or by one store read per second for all regulators (Redis).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from tokenward.changefeed import ChangeFeed
from tokenward.errorcodes import ErrorCode
from tokenward.errors import StorageError, TooManyRequests
from tokenward.storage.changes import ChangeEntry, ChangeKind
from tokenward.storage.regulation import KEY_LEN, RegulationStore, batch_counts

__all__ = [
    "FORGET_PER_PASS",
    "MAX_QUEUED",
    "MAX_TRACKED_KEYS",
    "Regulation",
    "RegulationPolicy",
    "Regulator",
    "client_key",
    "hard_keys",
    "ip_key",
    "pair_key",
    "user_key",
]

log = logging.getLogger("tokenward.regulation")

_PURGE_EVERY = 60.0
_FORGET_EVERY = 10.0
#: Keys one pass of :meth:`Regulator._forget_idle` forgets at most (a few milliseconds of the event loop); a pass that
#: stopped there goes on at the next flush rather than 10 s later.
FORGET_PER_PASS = 5_000
#: Failures a regulator holds for the next flush (more while the store is down are dropped, counted, logged).
MAX_QUEUED = 100_000
#: Keys a regulator counts in memory (the oldest is forgotten beyond it; the store still counts it).
MAX_TRACKED_KEYS = 100_000

#: How a flush reports a ban it decided from the shared counts: ``(key, now, ban_time)``.
BanListener = Callable[[str, float, float], Awaitable[None]]


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
    """The (account, address) key; counted only for a check with no address (``ip`` None, :func:`hard_keys`)."""
    return _key("pair", f"{user}|{ip or '-'}")


def hard_keys(account: str, ip: str | None) -> tuple[str, ...]:
    """The hard keys of a check of ``account`` from ``ip``: the address when it is known, else the pair
    ``pair:<account>|-`` (docs/regulation.md).

    With an address, the (account, address) pair adds nothing: its failures are a subset of the address's, counted
    under the same policy, so the address reaches the limit on the same failure or earlier, and its ban covers the
    pair's. Counting it anyway cost a third of the keys, rows and writes of a flood from many addresses."""
    return (ip_key(ip),) if ip else (pair_key(account, None),)


def client_key(client_id: str) -> str:
    """An OAuth client (OpenID Provider token endpoint)."""
    return _key("client", client_id)


class Regulation:
    """What the regulators of one instance on one store share: the ban snapshot they all check, and one
    flush for all their queued failures and bans.

    The snapshot is updated at once by this instance's bans, by :meth:`apply_ban` (the change feed's BAN
    entries), and by :meth:`sync` (one store read for every regulator) — called by a background task
    when :attr:`background` is set, else on the request path at most once per ``sync_seconds``.
    """

    def __init__(
        self,
        store: RegulationStore,
        *,
        sync_seconds: float = 1.0,
        on_ban: BanListener | None = None,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.store = store
        self.sync_seconds = sync_seconds
        #: Audits a ban a flush decided from the shared counts (the request that caused it is gone).
        self.on_ban = on_ban
        self.max_queued = max_queued
        #: True when something else keeps :attr:`bans` current (a change feed, a background sync):
        #: the request path then never reads the store.
        self.background = False
        #: Set by :meth:`follow`: BAN entries keep the snapshot current, the store is read only at start
        #: and after a feed reset (:attr:`reload_due`).
        self.feed: ChangeFeed | None = None
        self.reload_due = False
        #: key → end of its ban (Unix seconds): the snapshot every regulator checks.
        self.bans: dict[str, float] = {}
        self.regulators: list[Regulator] = []
        self._synced_at = -math.inf
        self._purged_at = -math.inf
        self._flush_lock = asyncio.Lock()

    def regulator(self, policy: RegulationPolicy) -> Regulator:
        """A regulator with ``policy`` sharing this snapshot and flush."""
        return Regulator(self.store, policy, regulation=self)

    def follow(self, feed: ChangeFeed) -> None:
        """Keep the snapshot current from ``feed``'s BAN entries (a SQL store writes one per ban, in the
        ban's transaction) instead of reading the store every second; reload after a feed reset. Call it
        before the first :meth:`sync` (the load), with the feed started, so no ban falls between."""
        self.feed = feed
        feed.on(ChangeKind.BAN, self._on_ban_entry)
        feed.on_reset(self._on_reset)

    def _on_ban_entry(self, entry: ChangeEntry) -> None:
        if entry.until is not None:
            self.apply_ban(entry.key, entry.until.timestamp())

    def _on_reset(self) -> None:
        # The feed cannot vouch for what it missed: read every active ban again at the next refresh. The bans
        # held stay meanwhile (a ban is never lifted early, so none of them is wrong).
        self.reload_due = True

    async def refresh(self, now: float) -> None:
        """What the background task does every second before a flush: read the store's bans unless a feed
        keeps them (then only once after a reset)."""
        if self.feed is None or self.reload_due:
            self.reload_due = False
            await self.sync(now)

    def apply_ban(self, key: str, until: float) -> None:
        """Note a ban (ours, another instance's from the feed or the store): the longest one wins."""
        if self.bans.get(key, 0.0) < until:
            self.bans[key] = until

    def needs_sync(self, now: float) -> bool:
        return not self.background and now - self._synced_at >= self.sync_seconds

    async def sync(self, now: float) -> None:
        """Merge the store's active bans into the snapshot (one read) and drop the ended ones. Keeps the
        snapshot if the store fails. Bans are never lifted early, so merging never loses one made here
        while the read was in flight."""
        self._synced_at = now
        try:
            bans = await self.store.active_bans(_dt(now))
        except StorageError as exc:
            log.warning("cannot refresh the ban list: %s", exc.detail)
            return
        for key, until in bans.items():
            self.apply_ban(key, until.timestamp())
        self.drop_ended(now)

    def drop_ended(self, now: float) -> None:
        ended = [key for key, until in self.bans.items() if until <= now]
        for key in ended:
            del self.bans[key]

    def load(self, bans: dict[str, datetime], now: float) -> None:
        """Replace the snapshot with ``bans`` (start, feed reset), keeping this instance's unwritten bans."""
        pending = {key: until for regulator in self.regulators for key, until in regulator.pending_bans.items()}
        self.bans = {key: until.timestamp() for key, until in bans.items()}
        for key, until in pending.items():
            self.apply_ban(key, until)
        self.drop_ended(now)
        self._synced_at = now

    async def flush(self, now: float) -> list[str]:
        """Write every regulator's queued failures and bans (one batch each), ban the keys whose shared
        count reached their limit, audit those through :attr:`on_ban`, and purge once a minute.
        Never raises a storage error: what could not be written waits for the next flush."""
        async with self._flush_lock:
            banned: list[str] = []
            wrote_bans = False
            for regulator in self.regulators:
                had_bans = bool(regulator.pending_bans)
                newly = await regulator.flush(now)
                wrote_bans |= had_bans or bool(newly)
                for key in newly:
                    banned.append(key)
                    if self.on_ban is not None:
                        await self.on_ban(key, now, regulator.policy.ban_time)
            if now - self._purged_at >= _PURGE_EVERY and self.regulators:
                self._purged_at = now
                # One purge for every regulator on this store: the longest window decides what is old.
                window = max(regulator.policy.find_time for regulator in self.regulators)
                try:
                    await self.store.purge(failures_before=_dt(now - window), bans_before=_dt(now))
                except StorageError as exc:
                    log.warning("cannot purge old failures and bans: %s", exc.detail)
            self.drop_ended(now)
            if wrote_bans and self.feed is not None:
                await self.feed.announce()  # read here and woken elsewhere at once, not at the next poll
            return banned


#: One key's counts on this instance, flat: ``(limit, shared, shared_at, *own)``. ``limit`` is the count that bans the
#: key (infinite: never), ``shared`` every instance's count at the last flush that wrote the key and ``shared_at``
#: when; ``own`` this instance's recent failures (Unix seconds), oldest first, at most :func:`_cap` of them. A flat
#: tuple of numbers, not an object: the collector stops tracking it in the first young collection it survives, so
#: the keys a flood leaves behind (up to :data:`MAX_TRACKED_KEYS` per regulator) never reach the old generation
#: nor lengthen a full collection (an object and a list per key made those hundreds of milliseconds long: every
#: refused request from a new address adds keys). Nested tuples would not do: the outer one may be promoted
#: still tracked before the collector sees that the inner one holds only numbers.
_Track = tuple[float, ...]
_OWN = 3


def _cap(limit: float) -> int:
    """How many of its own failures a key keeps: a few times the limit is all a count needs."""
    return 4 * int(limit) + 8 if 0 < limit < math.inf else 1


def _count_of(track: _Track, now: float, find_time: float) -> int:
    """This instance's count in the window, or the shared count of the last flush, minus this instance's
    failures that left the window since, plus this instance's failures since. (Other instances' failures
    that left the window since that flush still count: at most one flush interval early.)"""
    shared_at = track[2]
    since = now - find_time
    mine = sum(1 for at in track[_OWN:] if at >= since)
    if shared_at < since:
        return mine
    then = shared_at - find_time
    aged = sum(1 for at in track[_OWN:] if then <= at < since)
    after = sum(1 for at in track[_OWN:] if at > shared_at)
    return max(mine, int(track[1]) - aged + after)


class Regulator:
    """Decides and records; ``now`` is always passed in as Unix seconds.

    Built alone (tests, tools) it has a :class:`Regulation` of its own; a serving process builds its
    regulators from one :class:`Regulation` per store (:meth:`Regulation.regulator`).
    """

    def __init__(
        self,
        store: RegulationStore,
        policy: RegulationPolicy,
        *,
        sync_seconds: float = 1.0,
        regulation: Regulation | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.regulation = regulation if regulation is not None else Regulation(store, sync_seconds=sync_seconds)
        self.regulation.regulators.append(self)
        #: key → its counts, least recently failed first (evicted from the front, forgotten from the front).
        self._tracks: OrderedDict[str, _Track] = OrderedDict()
        #: The keys whose track holds a shared count from a flush (a set of strings: nothing the collector walks).
        self._shared: set[str] = set()
        #: Failures queued for the next flush, as two columns (key, Unix seconds): strings and floats, nothing the
        #: collector walks, and the batch a flush hands on without a row object each.
        self._queued_keys: deque[str] = deque()
        self._queued_ats: deque[float] = deque()
        #: Bans decided here and not yet written: key → until.
        self.pending_bans: dict[str, float] = {}
        #: Failures dropped because the queue was full (the store was down for long).
        self.dropped = 0
        self._forgot_at = -math.inf

    @property
    def has_bans(self) -> bool:
        """Whether the snapshot holds any ban (the hot path skips :meth:`check` otherwise)."""
        return bool(self.regulation.bans)

    @property
    def queued(self) -> int:
        """Failures waiting for the next flush."""
        return len(self._queued_keys)

    def check(self, keys: tuple[str, ...], now: float) -> None:
        """Raise :class:`TooManyRequests` when any key is banned in the snapshot."""
        bans = self.regulation.bans
        if not bans:
            return
        until = max((bans.get(k, 0.0) for k in keys), default=0.0)
        if until > now:
            raise TooManyRequests(
                "too many failed attempts; try again later",
                code=ErrorCode.TOO_MANY_ATTEMPTS,
                retry_after=math.ceil(until - now),
            )

    async def enforce(self, keys: tuple[str, ...], now: float) -> None:
        """Refresh the snapshot if it is due (never when a change feed or background task keeps it
        current), then :meth:`check`: the one guard every regulated credential check calls first."""
        if self.policy.enabled and self.regulation.needs_sync(now):
            await self.regulation.sync(now)
        self.check(keys, now)

    def banned(self, key: str, now: float) -> bool:
        """Whether ``key`` is banned in the snapshot (for soft keys, whose ban the caller interprets)."""
        return self.regulation.bans.get(key, 0.0) > now

    def needs_sync(self, now: float) -> bool:
        return self.policy.enabled and self.regulation.needs_sync(now)

    async def sync(self, now: float) -> None:
        """Refresh the ban snapshot from the store (one query). Keeps the old snapshot if the store fails."""
        await self.regulation.sync(now)

    def failure(self, keys: tuple[str, ...], now: float, *, soft: tuple[str, ...] = ()) -> list[str]:
        """Count a failure for every key (hard ``keys`` and ``soft`` ones) and queue it for the next flush;
        ban at once the keys that reached their limit. Returns the newly banned keys (no I/O)."""
        if not self.policy.enabled or not (keys or soft):
            return []
        newly: list[str] = []
        for key in keys:
            if self._count(key, now, self.policy.max_failures) and self._ban(key, now):
                newly.append(key)
        for key in soft:
            if self._count(key, now, self.policy.soft_max_failures) and self._ban(key, now):
                newly.append(key)
        return newly

    def _count(self, key: str, now: float, limit: int | None) -> bool:
        """Count and queue one failure of ``key``; whether its count reached ``limit``."""
        tracks = self._tracks
        track = tracks.get(key)
        if track is None:  # most keys of a flood: one failure, and its count is 1
            if len(tracks) >= MAX_TRACKED_KEYS:
                self._shared.discard(tracks.popitem(last=False)[0])
            track = tracks[key] = (math.inf if limit is None else limit, 0, -math.inf, now)
            count = 1
        else:
            if len(track) - _OWN >= _cap(track[0]):
                track = (*track[:_OWN], *track[_OWN + 1 :], now)  # the oldest of its own failures goes
            else:
                track = (*track, now)
            tracks[key] = track
            tracks.move_to_end(key)
            count = _count_of(track, now, self.policy.find_time)
        if len(self._queued_keys) >= self.regulation.max_queued:
            self._drop_oldest()
        self._queued_keys.append(key)
        self._queued_ats.append(now)
        return count >= track[0]

    def _drop_oldest(self) -> None:
        self._queued_keys.popleft()
        self._queued_ats.popleft()
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("regulation: %d failures dropped, the store has not taken them", self.dropped)

    def _ban(self, key: str, now: float) -> bool:
        """Ban ``key`` for ``ban_time`` from ``now`` (or longer, if it is already); whether it was not banned."""
        until = now + self.policy.ban_time
        before = self.regulation.bans.get(key, 0.0)
        if before < until:
            self.regulation.apply_ban(key, until)
            self.pending_bans[key] = until
        return before <= now

    async def flush(self, now: float) -> list[str]:
        """Write the queued failures (one batch) and bans; ban the keys the shared counts put at their
        limit and return them. A storage error keeps the queue (bounded) for the next flush."""
        newly: list[str] = []
        if self._queued_keys:
            keys, ats = list(self._queued_keys), list(self._queued_ats)
            self._queued_keys.clear()
            self._queued_ats.clear()
            since = now - self.policy.find_time
            try:
                counts = await self.store.record_failure_columns(keys, ats, since=since)
            except StorageError as exc:
                log.warning("cannot record %d failed checks (kept for the next flush): %s", len(keys), exc.detail)
                self._requeue(keys, ats, now)
                counts = {}
            else:
                counts = self._with_batch_counts(counts, keys, ats, since)
            tracks = self._tracks
            for key, count in counts.items():
                track = tracks.get(key)
                if track is None:
                    continue
                tracks[key] = (track[0], count, now, *track[_OWN:])  # in place: the order is by failures, not flushes
                self._shared.add(key)
                if count >= track[0] and not self.banned(key, now) and self._ban(key, now):
                    newly.append(key)
        if self.pending_bans:
            bans, self.pending_bans = self.pending_bans, {}
            try:
                await self.store.add_bans([(key, _dt(until)) for key, until in bans.items()], _dt(now))
            except StorageError as exc:
                log.warning("cannot record %d bans (kept for the next flush): %s", len(bans), exc.detail)
                for key, until in bans.items():
                    self.pending_bans[key] = max(until, self.pending_bans.get(key, 0.0))
        if now - self._forgot_at >= _FORGET_EVERY:
            # A pass cut short by its bound leaves more to forget: the next flush goes on with it.
            self._forgot_at = now if self._forget_idle(now) < FORGET_PER_PASS else -math.inf
        return newly

    def _with_batch_counts(
        self, counts: dict[str, int], keys: list[str], ats: list[float], since: float
    ) -> dict[str, int]:
        """The store may leave out a key counted by this batch's rows alone (most keys of a flood): its shared count
        is then what this instance saw, and a track holding no shared count needs nothing. One still holding an
        earlier flush's (other instances' failures since gone from the window) gets the batch's count instead."""
        stale = self._shared.intersection(keys).difference(counts)
        if not stale:
            return counts
        own = batch_counts(keys, ats, since)
        return {**counts, **{key: own[key] for key in stale}}

    def _requeue(self, keys: list[str], ats: list[float], now: float) -> None:
        """Put a batch the store refused back in front of the queue, minus what has left the window."""
        since = now - self.policy.find_time
        kept = [i for i, at in enumerate(ats) if at >= since]
        room = max(self.regulation.max_queued - len(self._queued_keys), 0)
        if len(kept) > room:
            lost, kept = len(kept) - room, kept[len(kept) - room :]
            self.dropped += lost
            log.warning("regulation: %d failures dropped, the store has not taken them", self.dropped)
        self._queued_keys.extendleft(keys[i] for i in reversed(kept))
        self._queued_ats.extendleft(ats[i] for i in reversed(kept))

    def _forget_idle(self, now: float) -> int:
        """Forget the keys with nothing in the window, from the front (least recently failed first) up to
        the first one still counting, at most :data:`FORGET_PER_PASS` of them; how many. A pass costs what it
        forgets, not every key held, and never holds the event loop for long: a flood from many addresses can
        leave 100,000 keys to forget at once."""
        since = now - self.policy.find_time
        tracks = self._tracks
        forgotten = 0
        while tracks and forgotten < FORGET_PER_PASS:
            key, track = next(iter(tracks.items()))
            if track[2] >= since or track[-1] >= since:  # the last flush that wrote it, its newest failure
                break
            del tracks[key]
            self._shared.discard(key)
            forgotten += 1
        return forgotten


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
