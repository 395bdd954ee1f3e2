"""The app token service: create, list, revoke and verify, with audit and regulation.

Core rules live here; the web routes and the CLI only translate input and output. ``now``
comes from the injected ``clock`` (Unix seconds), randomness from :mod:`secrets`.

Verification (``verify``), in order:

1. ban check against the instance's snapshot of active bans → 429 ``too_many_attempts``;
2. the change feed must be fresh, else 503 ``changes_stale``: memory is only as good as the feed;
3. shape and checksum (no lookup) → 401 ``apptoken_malformed`` / ``apptoken_checksum``;
4. record by id from memory: an id missing from the filter of known ids is unknown with no SQL
   (beyond a trickle of ``unknown_lookups_per_second``, so a token just created on another
   instance works here before the feed brings its entry); a known id not yet in memory is read
   once (one primary-key query shared by the requests that ask together) and kept, with no TTL,
   until a change-log entry for it invalidates it;
5. HMAC of the secret compared in constant time (an unknown id is not hashed: ids are public), then
   the owner → 401 ``apptoken_invalid`` for an unknown id, a wrong secret and a wrong user alike (the
   reason goes to the audit log only);
6. revoked / expired → 401 ``apptoken_revoked`` / ``apptoken_expired`` (only after the
   secret was proven, so these reveal nothing to a guesser).

Freshness: every create and revoke writes an ``APP_TOKEN`` change-log entry in its transaction;
each instance's :class:`~tokenward.changefeed.ChangeFeed` hands it to :meth:`AppTokenService._on_change`,
which drops the record and the owner's list (a read in flight for them is not kept, see
:mod:`.cache`). The writing instance does the same at once, then announces the change.

A verified use is only noted in memory; :meth:`AppTokenService.flush_last_used` writes last_used_at
behind, in one batched statement per interval (docs/app-tokens.md).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import getpass
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple, TypeAlias

from tokenward.changefeed import ChangeFeed
from tokenward.durations import check_expiry
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, Conflict, NotFound, StorageError, TokenwardError, Unauthorized
from tokenward.keys import Secret
from tokenward.storage import AppTokenRecord, AppTokenStore, AuditEvent, AuditLog
from tokenward.storage.apptokens import (
    EXPIRES_AT,
    ID,
    KEY_ID,
    LAST_USED_AT,
    OWNER,
    REVOKED_AT,
    SCOPES,
    SECRET_HASH,
    PackedRecord,
    pack,
    unpack,
)
from tokenward.storage.audit import BufferedAuditLog
from tokenward.storage.changes import ChangeEntry, ChangeKind

from . import format as token_format
from .access import AdminCheck, UserDirectory, no_admins, subject_directory, validate_scopes, validate_subject
from .cache import MemoryCache, entries_for
from .known import KnownIds
from .regulation import Regulator, hard_keys, ip_key, user_key

__all__ = ["AppTokenConfig", "AppTokenService", "VerifiedToken", "cli_actor"]

log = logging.getLogger("tokenward.apptokens")

_MAX_LABEL = 200
_CREATE_ATTEMPTS = 3
#: Shares of the memory budget: records by id, and the owners' lists.
_RECORDS_SHARE = 0.8
_MB = 1 << 20

#: A record held in memory: its :data:`~tokenward.storage.apptokens.PackedRecord` followed by the MAC of the exact
#: token string once it was verified. Only atoms (str, bytes, float, None): the garbage collector stops tracking
#: it, so 100,000 of them cost a full collection nothing (a dataclass with datetimes would be walked each time).
_Held: TypeAlias = tuple[
    str, str, str, tuple[str, ...], bytes, str, float, float, str, float | None, float | None, bytes | None
]
_FINGERPRINT: Final = 11
#: An owner's list held in memory: (when it was read, by ``clock``; the owner's unrevoked records packed, oldest
#: first). Atoms too.
_HeldList: TypeAlias = tuple[float, tuple[PackedRecord, ...]]


class VerifiedToken(NamedTuple):
    """What a verification proves: the token ``id``, its ``owner`` and ``scopes`` (built per check, never held)."""

    id: str
    owner: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AppTokenConfig:
    """The knobs of the service (from ``TOKENWARD_APP_TOKENS_*``)."""

    default_expiry: timedelta = timedelta(hours=72)
    max_expiry: timedelta = timedelta(days=365)
    max_per_user: int = 100
    last_used_interval: float = 60.0
    #: Memory for records and lists held by this instance (``TOKENWARD_APP_TOKENS_MEMORY_MB``), in MB.
    memory_mb: float = 128.0
    #: Lookups a second (and burst) of ids the known-id filter does not hold (created elsewhere, entry not read
    #: yet); 0: none, an id unknown to the filter waits for the feed.
    unknown_lookups_per_second: float = 2.0
    impersonation: bool = False
    #: Seconds a failed check waits while its account is over the soft limit (docs/regulation.md).
    account_failure_delay: float = 1.0


def cli_actor() -> str:
    """The audit actor for operator commands: ``cli:<os user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry in some containers
        return "cli"


class AppTokenService:
    """App tokens of one deployment, answered from memory that ``feed`` keeps fresh (module docstring)."""

    #: Where events that are not part of a change go (failed verifications, bans): a write-behind
    #: log (the runtime's ``BufferedAuditLog``), so a failure costs no statement on its request. None: ``audit``.
    audit_behind: BufferedAuditLog | None = None

    def __init__(
        self,
        *,
        store: AppTokenStore,
        feed: ChangeFeed,
        audit: AuditLog,
        regulator: Regulator,
        key: Secret,
        config: AppTokenConfig | None = None,
        clock: Callable[[], float] = time.time,
        instance: str | None = None,
        is_admin: AdminCheck = no_admins,
        directory: UserDirectory = subject_directory,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.feed = feed
        self.sleep = sleep
        self.audit = audit
        self.regulator = regulator
        self.config = config or AppTokenConfig()
        self.clock = clock
        self.instance = instance
        self.is_admin = is_admin
        self.directory = directory
        self._key = key
        self._key_id = token_format.key_id(key)
        budget = int(self.config.memory_mb * _MB)
        #: Records by id (None: an id the filter let through that the store does not hold). The fingerprint is
        #: a keyed BLAKE2b of the verified token string under a per-process random key.
        self._records: MemoryCache[str, _Held | None] = MemoryCache(capacity=entries_for(int(budget * _RECORDS_SHARE)))
        #: Complete lists by owner, weighed by their length.
        self._lists: MemoryCache[str, _HeldList] = MemoryCache(
            capacity=entries_for(budget - int(budget * _RECORDS_SHARE)), weigh=lambda held: len(held[1]) + 1
        )
        # Keyed BLAKE2b after its key block, copied per check: the key is absorbed once, not on every check.
        self._fingerprinter = hashlib.blake2b(key=secrets.token_bytes(32), digest_size=32)
        # The filter of known ids: every id in the store (load_known_ids), grown by the feed. None until loaded
        # and after a feed reset: then every well-formed id is looked up.
        self._known: KnownIds | None = None
        self._watching: list[set[str]] = []  # ids the feed changed while a start-up load was reading
        self._known_epoch = 0
        self._following = False
        self._reloading: asyncio.Task[None] | None = None
        self._unknown_allowance = self.config.unknown_lookups_per_second
        self._unknown_at = self.clock()
        # Write-behind of last_used_at (docs/app-tokens.md): token id → its latest use not yet written, at most as
        # many ids as records fit in memory; :meth:`flush_last_used` writes them in one statement, off the request
        # path. ``_flushed``: the uses of the last flush, which lists read before it may not show yet.
        self._uses: dict[str, float] = {}
        self._uses_dropped = 0
        self._max_uses = self._records.capacity
        self._flushed: dict[str, float] = {}
        feed.on(ChangeKind.APP_TOKEN, self._on_change)
        feed.on_reset(self._on_reset)

    @property
    def capacity(self) -> int:
        """How many records the memory budget holds (and how many distinct uses one flush interval notes)."""
        return self._records.capacity

    # -- management ------------------------------------------------------------------------

    async def create(
        self,
        *,
        owner: str,
        created_by: str,
        expiry: timedelta | None = None,
        label: str = "",
        scopes: Iterable[str] = (),
        impersonated: bool = False,
        request_id: str | None = None,
    ) -> tuple[AppTokenRecord, str]:
        """Create a token; return its record and the token string (shown once, never stored)."""
        owner = validate_subject(owner).lower()
        lifetime = check_expiry(expiry or self.config.default_expiry, self.config.max_expiry)
        label = label.strip()
        if len(label) > _MAX_LABEL or any(ord(c) < 32 for c in label):
            raise BadRequest(f"label must be at most {_MAX_LABEL} printable characters", code=ErrorCode.LABEL_INVALID)
        scope_tuple = validate_scopes(scopes)
        now = self.clock()
        for attempt in range(_CREATE_ATTEMPTS):
            token, parsed = token_format.generate()
            record = AppTokenRecord(
                id=parsed.id,
                owner=owner,
                label=label,
                scopes=scope_tuple,
                secret_hash=token_format.hash_secret(self._key, parsed.id, parsed.secret),
                key_id=self._key_id,
                created_at=_dt(now),
                expires_at=_dt(now + lifetime.total_seconds()),
                created_by=created_by,
            )
            events = [
                self._event(
                    now,
                    actor=created_by,
                    action="apptoken.create",
                    subject=owner,
                    target=record.id,
                    detail={
                        "label": label,
                        "scopes": list(scope_tuple),
                        "expires_at": record.expires_at.isoformat(),
                        "impersonated": impersonated,
                    },
                    request_id=request_id,
                )
            ]
            if impersonated:
                events.insert(0, self._impersonation_event(now, created_by, owner, "create", request_id))
            # One transaction: the limit check (serialised per owner), the record and its audit events —
            # a token is never stored without its audit trail, nor reported failed once stored.
            try:
                await self.store.add(record, max_live=self.config.max_per_user, audit=self.audit, events=events)
                break
            except Conflict as exc:  # a 71-bit id collision: astronomically rare, but never overwrite
                if exc.error_code != ErrorCode.STORAGE_CONFLICT or attempt == _CREATE_ATTEMPTS - 1:
                    raise
        self._changed(record.id, owner)
        self._records.put(record.id, (*pack(record), None))
        await self._announce()
        return record, token

    async def list(self, owner: str | None = None) -> builtins.list[AppTokenRecord]:
        """Unrevoked tokens of ``owner`` (every owner when ``None``), expired ones included, oldest first.

        An owner's list comes from memory (read once, dropped by a change of one of its tokens, and read again
        in the background after ``last_used_interval`` so that other instances' last uses show); every owner's,
        from the store.
        """
        if owner is None:
            return [self._with_pending_use_of(record) for record in await self.store.list(owner=None)]
        owner = owner.lower()
        self.feed.check_fresh()
        held = self._lists.get(owner)
        if isinstance(held, tuple):
            if self.clock() - held[0] >= self.config.last_used_interval:
                # Only last_used_at can be behind (a change drops the list at once): answer with it meanwhile,
                # rather than make this owner's requests wait for a read that a busy loop delays.
                self._lists.refresh(owner, lambda: self._read_list(owner))
            return self._with_pending_uses(held[1])
        _, packed = await self._lists.load(owner, lambda: self._read_list(owner))
        return self._with_pending_uses(packed)

    async def _read_list(self, owner: str) -> _HeldList:
        at = self.clock()
        return at, tuple(pack(record) for record in await self.store.list(owner=owner))

    async def get(self, token_id: str, *, owner: str | None) -> AppTokenRecord:
        """An unrevoked token by id; 404 ``apptoken_not_found`` when missing, revoked or not ``owner``'s."""
        record = None
        if token_format.is_token_id(token_id):
            self.feed.check_fresh()
            held = await self._record(token_id)
            record = None if held is None else unpack(held[:_FINGERPRINT])
        return _found(record, token_id, owner)

    async def revoke(
        self,
        token_id: str,
        *,
        owner: str | None,
        actor: str,
        impersonated: bool = False,
        request_id: str | None = None,
    ) -> AppTokenRecord:
        """Revoke (delete) a token; 404 when it does not exist, is not ``owner``'s or was already deleted."""
        # From the store, not memory: a write decides on what SQL holds, fresh feed or not.
        record = _found(await self.store.get(token_id) if token_format.is_token_id(token_id) else None, token_id, owner)
        now = self.clock()
        events = [
            self._event(
                now,
                actor=actor,
                action="apptoken.delete",
                subject=record.owner,
                target=record.id,
                detail={"label": record.label, "impersonated": impersonated},
                request_id=request_id,
            )
        ]
        if impersonated:
            events.insert(0, self._impersonation_event(now, actor, record.owner, "delete", request_id))
        # One transaction: the revocation and its audit events — never revoked unaudited, nor reported
        # failed once revoked. Its change-log entry is in that transaction too; only after the commit: the local
        # invalidation and the wake-up of the other instances.
        if not await self.store.revoke(record.id, _dt(now), owner=record.owner, audit=self.audit, events=events):
            raise NotFound(f"no app token {token_id[:32]!r}", code=ErrorCode.APPTOKEN_NOT_FOUND)
        self._changed(record.id, record.owner)
        await self._announce()
        return dataclasses.replace(record, revoked_at=_dt(now))

    async def record_impersonation(self, *, actor: str, target: str, act: str, request_id: str | None = None) -> None:
        """Audit that ``actor`` acted (``create``/``list``/``delete``) on ``target``'s tokens."""
        await self.audit.append(self._impersonation_event(self.clock(), actor, target, act, request_id))

    def _impersonation_event(self, now: float, actor: str, target: str, act: str, request_id: str | None) -> AuditEvent:
        return self._event(
            now,
            actor=actor,
            action="apptoken.impersonate",
            subject=target.lower(),
            detail={"act": act},
            request_id=request_id,
        )

    def resolve_reference(self, reference: str) -> str:
        """A token id from what oCIS scripts pass as ``token=``: the full token, ``twa_<id>`` or the id."""
        if reference.startswith(token_format.PREFIX) and len(reference) > len(token_format.PREFIX) + 12:
            try:
                return token_format.parse(reference).id
            except Unauthorized as exc:  # a parameter, not a credential: 400, not 401
                raise BadRequest(f"token: {exc.detail}", code=ErrorCode.TOKEN_REFERENCE_INVALID) from None
        candidate = reference.removeprefix(token_format.PREFIX)
        if not token_format.is_token_id(candidate):
            raise NotFound(f"no app token {reference[:32]!r}", code=ErrorCode.APPTOKEN_NOT_FOUND)
        return candidate

    # -- verification ----------------------------------------------------------------------

    async def verify(
        self, user: str | None, token: str, *, client_ip: str | None = None, request_id: str | None = None
    ) -> VerifiedToken:
        """Check ``user:token`` (``user`` None: a bearer token, owner not checked). Returns what it proves."""
        now = self.clock()
        regulator = self.regulator
        if regulator.has_bans or regulator.needs_sync(now):
            await regulator.enforce(_regulation_keys(user, client_ip), now)
        self.feed.check_fresh()
        # Warm path: this exact token string was verified before and its record has not changed since. One keyed
        # BLAKE2b under a per-process random key stands in for parsing, checksum and the stored-hash comparison.
        held = self._records.get(token[4:16]) if len(token) == token_format.TOKEN_LENGTH else None
        if isinstance(held, tuple):
            fingerprint = held[_FINGERPRINT]
            if fingerprint is not None and hmac.compare_digest(fingerprint, self._fingerprint(token)):
                if user is None or user.lower() == held[OWNER]:
                    if now >= held[EXPIRES_AT] or held[REVOKED_AT] is not None:
                        self._check_live(held, now)
                    self._note_use(held[ID], now)
                    return VerifiedToken(held[ID], held[OWNER], held[SCOPES])
        return await self._verify_cold(user, token, now=now, client_ip=client_ip, request_id=request_id)

    async def _verify_cold(
        self, user: str | None, token: str, *, now: float, client_ip: str | None, request_id: str | None
    ) -> VerifiedToken:
        keys = _regulation_keys(user, client_ip)
        try:
            token_id, secret = token_format.split(token)
        except Unauthorized as exc:
            late = self._failed(now, keys, user, None, exc.error_code, client_ip, request_id)
            if late is not None:
                await late
            raise
        # :meth:`_record`, without its coroutine when the filter rules the id out (most refusals of a flood).
        held = None if self._ruled_out(token_id) else await self._looked_up(token_id)
        # An unknown id is not hashed: the id is public, and finding it unknown never cost what a known one does
        # (a bit of the filter against a record). The secret is compared in constant time; owner names are not
        # secret: a plain comparison leaks nothing (and works for any Unicode name).
        if held is None:
            reason = "unknown_id"
        elif not hmac.compare_digest(
            bytes.fromhex(token_format.hash_secret(self._key, token_id, Secret(secret.encode("ascii")))),
            held[SECRET_HASH],
        ):
            reason = "wrong_secret"
        elif user is not None and user.lower() != held[OWNER]:
            reason = "owner_mismatch"
        else:
            reason = ""
        if held is None or reason:
            if reason == "wrong_secret" and held is not None and held[KEY_ID] != self._key_id:
                log.warning(
                    "app token %s was made with app-token key %s but this instance has %s: "
                    "every instance must share the same apptoken.key",
                    held[ID],
                    held[KEY_ID],
                    self._key_id,
                )
            late = self._failed(now, keys, user, token_id, reason, client_ip, request_id, known=held is not None)
            if late is not None:
                await late
            raise Unauthorized("invalid user name or app token", code=ErrorCode.APPTOKEN_INVALID)
        try:
            self._check_live(held, now)
        except Unauthorized as exc:
            await self._refused(
                now, unpack(held[:_FINGERPRINT]), exc.error_code.removeprefix("apptoken_"), client_ip, request_id
            )
            raise
        if held[_FINGERPRINT] is None and self._records.get(held[ID]) is held:
            # Only onto the very record read (a changed one was invalidated meanwhile, and stays so).
            self._records.replace(held[ID], held, (*held[:_FINGERPRINT], self._fingerprint(token)))
        self._note_use(held[ID], now)
        return VerifiedToken(held[ID], held[OWNER], held[SCOPES])

    async def _record(self, token_id: str) -> _Held | None:
        """The held record of a well-formed id: None with no SQL when the filter does not know it, else from
        memory, else one read (shared by the requests that ask together, kept unless invalidated meanwhile).
        An id the filter does not know is looked up within the trickle (:meth:`_may_look_up_unknown`), and a request
        that finds its lookup in flight joins it without spending the trickle: workers starting together with a
        token just created elsewhere are all answered by the one read."""
        return None if self._ruled_out(token_id) else await self._looked_up(token_id)

    async def _looked_up(self, token_id: str) -> _Held | None:
        """:meth:`_record` past its filter (:meth:`_ruled_out`, asked once: it may spend the trickle)."""
        held = await self._records.load(token_id, lambda: self._read(token_id))
        known = self._known
        if held is not None and known is not None:
            known.add(token_id)  # created elsewhere, its entry not read yet: ids never leave the table
        return held

    def _ruled_out(self, token_id: str) -> bool:
        """Whether :meth:`_record` answers None with no lookup: the filter does not know the id, nothing holds or
        reads it, and the trickle grants no read (with no await: most refused checks of a flood end here)."""
        known = self._known
        if known is None:
            if self._following and (self._reloading is None or self._reloading.done()):
                self._reload_known_soon()  # the last reload failed (database down): try again
            return False
        records = self._records
        return (
            token_id not in records
            and token_id not in known
            and not records.loading(token_id)
            and not self._may_look_up_unknown()
        )

    def _may_look_up_unknown(self) -> bool:
        """Whether an id the filter does not know may be looked up: a token created on another instance is
        usable here at once, before this feed reads its entry, while a flood of unknown ids costs at most
        ``unknown_lookups_per_second`` statements (a token bucket on ``clock``)."""
        rate = self.config.unknown_lookups_per_second
        if rate <= 0:
            return False
        now = self.clock()
        allowance = min(rate, self._unknown_allowance + (now - self._unknown_at) * rate)
        self._unknown_at = now
        if allowance < 1:
            self._unknown_allowance = allowance
            return False
        self._unknown_allowance = allowance - 1
        return True

    async def _read(self, token_id: str) -> _Held | None:
        record = await self.store.get(token_id)
        return None if record is None else (*pack(record), None)

    # -- memory kept fresh -----------------------------------------------------------------

    async def load_known_ids(self) -> int:
        """Fill the filter of known ids from the store (one streaming query); how many ids it holds.

        Call it after ``feed.start()``: an id created while it loads reaches the filter through the feed, so
        none falls between. Until it is loaded (CLI processes never load it) every well-formed id is looked up.
        """
        epoch = self._known_epoch
        added: set[str] = set()
        self._watching.append(added)
        try:
            ids = await self.store.known_ids()
        finally:
            self._watching.remove(added)
        if epoch != self._known_epoch:  # a feed reset came meanwhile: what was read may miss its changes
            return 0
        ids |= added
        self._known = KnownIds(ids)
        self._following = True
        return len(self._known)

    async def prefill(self) -> int:
        """Hold the newest live records up to the memory budget (one query), so that a starting instance
        answers its first checks without a read each; how many it now holds. Call it after ``feed.start()``:
        a record the feed changes while the query runs is not held (it is read when used)."""
        changed: set[str] = set()
        self._watching.append(changed)
        epoch = self._known_epoch
        try:
            records = await self.store.newest_live(self._records.capacity)
        finally:
            self._watching.remove(changed)
        if epoch != self._known_epoch:
            return 0
        held = 0
        for packed in reversed(records):  # oldest first: the newest are the last to be evicted
            token_id = packed[ID]
            if token_id not in changed and token_id not in self._records:
                self._records.put(token_id, (*packed, None))
                held += 1
        return held

    def _reload_known_soon(self) -> None:
        try:
            self._reloading = asyncio.get_running_loop().create_task(self._reload_known())
        except RuntimeError:  # no loop (a synchronous caller): the next lookup starts it
            self._reloading = None

    async def _reload_known(self) -> None:
        try:
            await self.load_known_ids()
        except StorageError as exc:
            log.warning("cannot load the known app token ids (will retry): %s", exc.detail)

    async def close(self) -> None:
        """Stop a filter reload in flight (``Runtime.close``)."""
        task, self._reloading = self._reloading, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_change(self, entry: ChangeEntry) -> None:
        """An ``APP_TOKEN`` entry from the feed: a token was created or revoked, here or elsewhere."""
        self._changed(entry.key, entry.subject)

    def _changed(self, token_id: str, owner: str | None) -> None:
        if self._known is not None:
            self._known.add(token_id)
        for watching in self._watching:
            watching.add(token_id)
        self._records.invalidate(token_id)
        if owner is None:
            self._lists.clear()
        else:
            self._lists.invalidate(owner)

    def _on_reset(self) -> None:
        """The feed cannot vouch for what it missed: drop everything, reload the filter."""
        self._records.clear()
        self._lists.clear()
        self._known = None
        self._known_epoch += 1
        if self._following:
            self._reload_known_soon()

    @staticmethod
    def _check_live(held: _Held, now: float) -> None:
        if held[REVOKED_AT] is not None:
            raise Unauthorized("this app token was deleted", code=ErrorCode.APPTOKEN_REVOKED)
        if now >= held[EXPIRES_AT]:
            raise Unauthorized("this app token has expired; create a new one", code=ErrorCode.APPTOKEN_EXPIRED)

    def _fingerprint(self, token: str) -> bytes:
        # Keyed BLAKE2b is a MAC (RFC 7693 §2.9), ~4x faster than hmac.digest for a 45-byte input.
        fingerprint = self._fingerprinter.copy()
        fingerprint.update(token.encode("utf-8", "surrogatepass"))
        return fingerprint.digest()

    async def _announce(self) -> None:
        try:
            await self.feed.announce()
        except StorageError as exc:  # SQL holds the change; the other instances' polls find it
            log.warning("app token change not announced (%s)", exc.error_code)

    def forget(self, token_id: str) -> None:
        """Drop a record held in memory (the next check reads it again)."""
        self._records.invalidate(token_id)

    def _note_use(self, token_id: str, now: float) -> None:
        if token_id in self._uses or len(self._uses) < self._max_uses:
            self._uses[token_id] = now
        else:  # bounded memory: beyond that many distinct tokens per interval, the extra uses go unrecorded
            self._uses_dropped += 1

    async def flush_last_used(self) -> int:
        """Write the last uses noted since the previous flush in one batched statement; how many tokens.

        Called every ``last_used_interval`` seconds by a periodic task and once more on shutdown
        (``Runtime.close``). A failed write keeps the uses for the next flush; it never raises:
        last_used_at is informational, a crash loses at most one interval of it.
        """
        uses, self._uses = self._uses, {}
        dropped, self._uses_dropped = self._uses_dropped, 0
        if dropped:
            log.warning(
                "last use of %d app token checks not recorded: over %d distinct tokens in one interval "
                "(TOKENWARD_APP_TOKENS_MEMORY_MB)",
                dropped,
                self._max_uses,
            )
        if not uses:
            return 0
        try:
            await self.store.touch_many(uses)  # as floats: 100,000 datetimes made at once held the loop ~0.1 s
        except StorageError as exc:
            for token_id, at in uses.items():  # retried at the next flush; newer uses win, the bound holds
                if token_id in self._uses:
                    self._uses[token_id] = max(at, self._uses[token_id])
                elif len(self._uses) < self._max_uses:
                    self._uses[token_id] = at
            log.warning("cannot record last use of %d app tokens (will retry): %s", len(uses), exc.detail)
            return 0
        self._flushed = uses
        return len(uses)

    def _with_pending_uses(self, packed: Iterable[PackedRecord]) -> builtins.list[AppTokenRecord]:
        return [self._with_pending_use(p) for p in packed]

    def _with_pending_use(self, packed: PackedRecord) -> AppTokenRecord:
        """The public record, with a use noted here that the store may not show yet."""
        at = self._uses.get(packed[ID])
        if at is None:
            at = self._flushed.get(packed[ID])
        used = packed[LAST_USED_AT]
        if at is None or (used is not None and used >= at):
            return unpack(packed)
        return unpack(packed, last_used_at=at)

    def _with_pending_use_of(self, record: AppTokenRecord) -> AppTokenRecord:
        at = self._uses.get(record.id)
        if at is None:
            at = self._flushed.get(record.id)
        if at is None or (record.last_used_at is not None and record.last_used_at.timestamp() >= at):
            return record
        return dataclasses.replace(record, last_used_at=_dt(at))

    def _failed(
        self,
        now: float,
        keys: tuple[str, ...],
        user: str | None,
        token_id: str | None,
        reason: str,
        client_ip: str | None,
        request_id: str | None,
        *,
        known: bool = False,
    ) -> Awaitable[None] | None:
        """Count a failed check and note it. None when nothing is left to wait for (the usual case: the note went to
        the write-behind log), else what the caller must await: the account's delay, a ban's audit, a note to a log
        that writes at once. A refused request thus creates no coroutine for its bookkeeping."""
        # The account (soft key) counts only a guess that could have succeeded, at a token id that exists (``known``).
        # A malformed token or an unknown id fails whatever its secret: it guesses at no account's token, and a flood
        # of them costs one key and one row per refusal (its address's), not two (docs/regulation.md).
        # Every failure of an account over its soft limit answers late, counted or not: the delay tells nothing.
        account = user_key(user) if user and (known or self.regulator.has_bans) else None
        soft = (account,) if known and account is not None else ()
        banned = self.regulator.failure(keys, now, soft=soft)
        late = account is not None and self.regulator.banned(account, now)
        detail: dict[str, object] = {"reason": reason, "ip": client_ip}
        actor = _actor(user)
        if late or banned:
            return self._failed_late(now, actor, token_id, detail, request_id, banned, late)
        return self._note(now, actor, "apptoken.verify_failed", actor, token_id, detail, request_id)

    async def _failed_late(
        self,
        now: float,
        actor: str,
        token_id: str | None,
        detail: dict[str, object],
        request_id: str | None,
        banned: builtins.list[str],
        late: bool,
    ) -> None:
        if late:
            # The account is under attack: its failures answer late (a guesser's throughput drops), its
            # owner's right tokens do not (no lockout). App tokens carry ~131 random bits: the delay is a
            # brake on noise, the per-address bans are what stop a guesser.
            await self.sleep(self.config.account_failure_delay)
        await self._audit(
            now,
            actor=actor,
            action="apptoken.verify_failed",
            subject=actor,
            target=token_id,
            detail=detail,
            request_id=request_id,
        )
        for key in banned:
            await self._audit(
                now,
                actor="system",
                action="regulation.ban",
                subject=key[:320],
                detail={"seconds": self.regulator.policy.ban_time, "ip": detail["ip"]},
                request_id=request_id,
            )

    async def _refused(
        self, now: float, record: AppTokenRecord, reason: str, client_ip: str | None, request_id: str | None
    ) -> None:
        await self._audit(
            now,
            actor=record.owner,
            action="apptoken.verify_failed",
            subject=record.owner,
            target=record.id,
            detail={"reason": reason, "ip": client_ip},
            request_id=request_id,
        )

    def _note(
        self,
        now: float,
        actor: str,
        action: str,
        subject: str | None,
        target: str | None,
        detail: dict[str, object] | None,
        request_id: str | None,
    ) -> Awaitable[None] | None:
        """A refused check's event: into the write-behind log, with no await (None); with no such log (a CLI process),
        the log's write at once, for the caller to await. A failed write is logged, never raised."""
        behind = self.audit_behind
        note: Callable[..., Awaitable[None] | None] = self.audit.note if behind is None else behind.note_now
        try:
            written = note(
                now,
                actor=actor[:320],
                action=action,
                subject=subject,
                target=target,
                detail=detail,
                request_id=request_id,
                instance=self.instance,
            )
        except TokenwardError as exc:
            _unwritten(action, exc)
            return None
        return None if written is None else _logged(written, action)

    async def _audit(
        self,
        now: float,
        *,
        actor: str,
        action: str,
        subject: str | None = None,
        target: str | None = None,
        detail: dict[str, object] | None = None,
        request_id: str | None = None,
    ) -> None:
        """A refused check's event (a ban's too), as :meth:`_note` writes it, awaited when it must be."""
        written = self._note(now, actor, action, subject, target, detail, request_id)
        if written is not None:
            await written

    def _event(
        self,
        now: float,
        *,
        actor: str,
        action: str,
        subject: str | None = None,
        target: str | None = None,
        detail: dict[str, object] | None = None,
        request_id: str | None = None,
    ) -> AuditEvent:
        return AuditEvent(
            at=_dt(now),
            actor=actor[:320],
            action=action,
            subject=subject,
            target=target,
            detail=detail or {},
            request_id=request_id,
            instance=self.instance,
        )


async def _logged(written: Awaitable[None], action: str) -> None:
    """Await an audit write at once, logging (never raising) its failure: a refused check's event is not required."""
    try:
        await written
    except TokenwardError as exc:
        _unwritten(action, exc)


def _unwritten(action: str, exc: TokenwardError) -> None:
    log.warning("cannot write audit event %s: %s", action, exc.detail)


def _found(record: AppTokenRecord | None, token_id: str, owner: str | None) -> AppTokenRecord:
    if record is None or record.revoked_at is not None or (owner is not None and record.owner != owner.lower()):
        raise NotFound(f"no app token {token_id[:32]!r}", code=ErrorCode.APPTOKEN_NOT_FOUND)
    return record


def _regulation_keys(user: str | None, client_ip: str | None) -> tuple[str, ...]:
    """The hard keys (:func:`~.regulation.hard_keys`): the client address, or the (account, no address) pair. The
    account alone is a soft key (:meth:`AppTokenService._failed`): a known user name must not let anyone lock its
    owner out. A bearer token with no address has none."""
    if user:
        return hard_keys(user, client_ip)
    return (ip_key(client_ip),) if client_ip else ()


def _actor(user: str | None) -> str:
    return (user or "anonymous")[:320] or "anonymous"


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
