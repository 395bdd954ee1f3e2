"""SessionService: sessions answered from memory, ended everywhere through the change feed, fail closed."""

from __future__ import annotations

import secrets

import pytest

from tokenward.changefeed import ChangeFeed
from tokenward.errorcodes import ErrorCode
from tokenward.errors import StorageUnavailable, TokenwardError
from tokenward.identity.encoding import b64u_encode
from tokenward.identity.session_memory import SessionMemory
from tokenward.identity.sessions import SessionService
from tokenward.keys import Keyring, Secret, TimeCode
from tokenward.storage import Database
from tokenward.storage.changes import ChangeKind, ChangeLog, InMemoryChangeLog, SqlChangeLog
from tokenward.storage.identity import IdentityStore, InMemoryIdentityStore, SessionRecord, SqlIdentityStore

NOW = 1_776_880_000.0
KEYRING = Keyring(TimeCode(label=29614680, secret=Secret(secrets.token_bytes(32))))


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counted(InMemoryIdentityStore):
    """An in-memory identity store that counts session reads."""

    def __init__(self, changes: InMemoryChangeLog | None = None) -> None:
        super().__init__(changes)
        self.reads = 0

    async def get_session(self, session_id: str) -> SessionRecord | None:
        self.reads += 1
        return await super().get_session(session_id)


class Instance:
    """One serving instance: its feed (started) and its session service with memory, over a shared store."""

    def __init__(self, store: IdentityStore, log: ChangeLog, clock: Clock, *, max_entries: int = 1000) -> None:
        self.feed = ChangeFeed(log, max_lag=5.0, monotonic=clock)
        self.memory = SessionMemory(store.get_session, max_entries=max_entries)
        self.feed.on_reset(self.memory.clear)
        self.service = SessionService(keyring=lambda: KEYRING, store=store, memory=self.memory, changes=self.feed)
        self.feed.on(ChangeKind.SESSION, lambda entry: self.memory.revoke(entry.key))

    @classmethod
    async def start(cls, store: IdentityStore, log: ChangeLog, clock: Clock) -> Instance:
        instance = cls(store, log, clock)
        await instance.feed.start()
        return instance

    async def verdict(self, token: str) -> str:
        try:
            await self.service.authenticate(token, now=NOW + 1)
        except TokenwardError as exc:
            return exc.error_code
        return "ok"


async def issue(service: SessionService) -> str:
    issued = await service.issue(
        kind="user",
        subject="alice@example.com",
        client_id="A" * 40,
        app_hash="",
        scopes=("read",),
        session_key=b64u_encode(secrets.token_bytes(32)),
        now=NOW,
    )
    return issued.source_identifier


async def test_a_held_session_costs_no_read_and_garbage_never_reaches_the_store() -> None:
    log, clock = InMemoryChangeLog(), Clock()
    store = Counted(log)
    instance = await Instance.start(store, log, clock)
    token = await issue(SessionService(keyring=lambda: KEYRING, store=store))  # issued on another instance
    for _ in range(5):
        assert await instance.verdict(token) == "ok"
    assert store.reads == 1
    # Sealed (ChaCha20-Poly1305): nothing but an identifier this server issued is looked up.
    other = Keyring(TimeCode(label=29614680, secret=Secret(secrets.token_bytes(32))))
    forged = SessionService(keyring=lambda: other, store=InMemoryIdentityStore())
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    garbage = {
        "nonsense": ErrorCode.SOURCE_IDENTIFIER_MALFORMED,
        "tw1si." + "x" * 60: ErrorCode.SOURCE_IDENTIFIER_MALFORMED,
        flipped: ErrorCode.SOURCE_IDENTIFIER_TAMPERED,
        await issue(forged): ErrorCode.TIMECODE_MISMATCH,  # sealed under another time code
        token[: token.rindex(".") + 1] + b64u_encode(secrets.token_bytes(80)): ErrorCode.SOURCE_IDENTIFIER_TAMPERED,
    }
    for bad, code in garbage.items():
        assert await instance.verdict(bad) == code
    assert store.reads == 1
    assert len(instance.memory) == 1


async def test_logout_is_refused_here_at_once_and_on_another_instance_after_its_feed_reads() -> None:
    log, clock = InMemoryChangeLog(), Clock()
    store = Counted(log)
    here = await Instance.start(store, log, clock)
    there = await Instance.start(store, log, clock)
    token = await issue(here.service)
    assert await here.verdict(token) == await there.verdict(token) == "ok"
    identity = await here.service.authenticate(token, now=NOW + 1)
    await here.service.logout(identity, now=NOW + 2)
    assert await here.verdict(token) == ErrorCode.SESSION_REVOKED  # this instance: at once, no read
    assert await there.feed.poll() == 1
    assert await there.verdict(token) == ErrorCode.SESSION_REVOKED
    assert store.reads == 1  # there, before the logout; here holds what it issued


async def test_a_second_runtime_sharing_the_database_hears_of_the_logout(database: Database) -> None:
    clock = Clock()
    here = await Instance.start(SqlIdentityStore(database), SqlChangeLog(database), clock)
    there = await Instance.start(SqlIdentityStore(database), SqlChangeLog(database), clock)
    token = await issue(here.service)
    assert await here.verdict(token) == await there.verdict(token) == "ok"
    # Ended from a third process (say the OIDC provider's logout on another host): only the feed tells them.
    elsewhere = SessionService(keyring=lambda: KEYRING, store=SqlIdentityStore(database))
    identity = await elsewhere.authenticate(token, now=NOW + 1)
    assert await elsewhere.revoke(identity.session_id, now=NOW + 2)
    assert not await elsewhere.revoke(identity.session_id, now=NOW + 3)
    await here.feed.poll()
    await there.feed.poll()
    assert await here.verdict(token) == await there.verdict(token) == ErrorCode.SESSION_REVOKED


async def test_a_stale_feed_refuses_held_sessions_with_503_and_reads_others() -> None:
    log, clock = InMemoryChangeLog(), Clock()
    store = Counted(log)
    instance = await Instance.start(store, log, clock)
    held = await issue(instance.service)
    new = await issue(SessionService(keyring=lambda: KEYRING, store=store))  # issued on another instance
    assert await instance.verdict(held) == "ok"
    clock.now += 5.5  # no successful read of the change log for longer than max_lag
    assert await instance.verdict(held) == ErrorCode.CHANGES_STALE
    with pytest.raises(StorageUnavailable) as info:
        await instance.service.authenticate(held, now=NOW + 1)
    assert info.value.status == 503
    assert await instance.verdict(new) == "ok"  # not held: read from the store, the truth
    await instance.feed.poll()
    assert await instance.verdict(held) == "ok"
    assert store.reads == 1


async def test_a_feed_reset_drops_every_held_session() -> None:
    log, clock = InMemoryChangeLog(), Clock()
    store = Counted(log)
    instance = await Instance.start(store, log, clock)
    token = await issue(instance.service)
    assert await instance.verdict(token) == "ok"
    assert len(instance.memory) == 1
    instance.feed._reset("test: an outage longer than the log can cover")
    assert len(instance.memory) == 0
    assert await instance.verdict(token) == "ok" and store.reads == 1


async def test_without_memory_every_check_reads_the_row() -> None:
    store = Counted()
    service = SessionService(keyring=lambda: KEYRING, store=store)
    token = await issue(service)
    identity = await service.authenticate(token, now=NOW + 1)
    await service.authenticate(token, now=NOW + 1)
    assert store.reads == 2
    await service.logout(identity, now=NOW + 2)
    with pytest.raises(TokenwardError) as info:
        await service.authenticate(token, now=NOW + 3)
    assert info.value.error_code == ErrorCode.SESSION_REVOKED


class Opening:
    """A keyring callable whose time codes the test rotates."""

    def __init__(self) -> None:
        self.keyring = KEYRING

    def __call__(self) -> Keyring:
        return self.keyring


async def test_an_opened_identifier_is_kept_and_rechecked_against_expiry_and_the_time_codes() -> None:
    keys = Opening()
    service = SessionService(keyring=keys, store=InMemoryIdentityStore(), opened_size=2)
    token = await issue(service)
    identity = await service.authenticate(token, now=NOW + 1)
    assert await service.authenticate(token, now=NOW + 2) is identity  # kept: not decrypted again
    # A kept identifier still expires.
    with pytest.raises(TokenwardError) as info:
        await service.authenticate(token, now=identity.expires_at)
    assert info.value.error_code == ErrorCode.SOURCE_IDENTIFIER_EXPIRED
    assert await service.authenticate(token, now=NOW + 3) == identity
    # A rotation: the old code is accepted during its grace only, kept or not.
    new_code = TimeCode(label=29614695, secret=Secret(secrets.token_bytes(32)))
    keys.keyring = Keyring(new_code, KEYRING.current, previous_until=NOW + 10)
    assert await service.authenticate(token, now=NOW + 4) == identity
    with pytest.raises(TokenwardError) as info:
        await service.authenticate(token, now=NOW + 10)
    assert info.value.error_code == ErrorCode.TIMECODE_MISMATCH
    # Another cluster's code (same identifier string, a keyring without its code): refused, never served from memory.
    keys.keyring = Keyring(new_code)
    with pytest.raises(TokenwardError) as info:
        await service.authenticate(token, now=NOW + 5)
    assert info.value.error_code == ErrorCode.TIMECODE_MISMATCH


async def test_the_opened_identifiers_are_bounded() -> None:
    service = SessionService(keyring=lambda: KEYRING, store=InMemoryIdentityStore(), opened_size=2)
    tokens = [await issue(service) for _ in range(3)]
    for token in tokens:
        await service.authenticate(token, now=NOW + 1)
    assert list(service._opened.items) == tokens[1:]
    # A logout still ends a session whose identifier is kept opened.
    identity = await service.authenticate(tokens[2], now=NOW + 1)
    await service.logout(identity, now=NOW + 2)
    with pytest.raises(TokenwardError) as info:
        await service.authenticate(tokens[2], now=NOW + 3)
    assert info.value.error_code == ErrorCode.SESSION_REVOKED


async def test_a_restarted_instance_holds_the_live_sessions_with_one_query(database: Database) -> None:
    clock = Clock()
    before = SessionService(keyring=lambda: KEYRING, store=SqlIdentityStore(database))
    kept, ended = await issue(before), await issue(before)
    ended_id = (await before.authenticate(ended, now=NOW + 1)).session_id
    assert await before.revoke(ended_id, now=NOW + 1)
    instance = await Instance.start(SqlIdentityStore(database), SqlChangeLog(database), clock)
    assert await instance.service.warm(now=NOW + 2) == 1
    assert len(instance.memory) == 1
    kept_id = (await before.authenticate(kept, now=NOW + 2)).session_id
    assert instance.memory.held(kept_id) is not None and instance.memory.held(ended_id) is None
    assert await instance.verdict(kept) == "ok"
    assert await instance.verdict(ended) == ErrorCode.SESSION_REVOKED  # not held: read, and refused


async def test_a_session_issued_here_is_held_at_once() -> None:
    log, clock = InMemoryChangeLog(), Clock()
    store = Counted(log)
    instance = await Instance.start(store, log, clock)
    token = await issue(instance.service)
    assert await instance.verdict(token) == "ok"
    assert store.reads == 0
