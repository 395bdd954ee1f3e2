from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from tests.apptokens.helpers import Clock, make_service, stores
from tokenward.apptokens import AppTokenConfig, RegulationPolicy
from tokenward.apptokens import format as token_format
from tokenward.errors import BadRequest, Conflict, NotFound, TooManyRequests, Unauthorized
from tokenward.keys import Secret
from tokenward.storage import AppTokenRecord, Database, InMemoryAppTokenStore
from tokenward.storage.changes import InMemoryChangeLog

ALICE = "alice@example.com"


class CountingStore(InMemoryAppTokenStore):
    def __init__(self) -> None:
        super().__init__(changes=InMemoryChangeLog())
        self.gets = 0
        self.touches = 0

    async def get(self, token_id: str) -> AppTokenRecord | None:
        self.gets += 1
        return await super().get(token_id)

    async def touch_many(self, uses: Mapping[str, float]) -> None:
        self.touches += 1
        await super().touch_many(uses)


async def _codes(service_call: object) -> str:
    try:
        await service_call  # type: ignore[misc]
    except (Unauthorized, TooManyRequests) as exc:
        return exc.error_code
    return "ok"


async def test_create_then_verify_and_audit() -> None:
    clock = Clock()
    service = make_service(clock=clock)
    record, token = await service.create(
        owner="Alice@Example.com", created_by=ALICE, label="ci", scopes=["b", "a", "a"]
    )
    assert record.owner == ALICE and record.scopes == ("a", "b")
    assert record.expires_at - record.created_at == timedelta(hours=72)
    assert token.startswith("twa_" + record.id + "_")
    assert token not in repr(record) and record.secret_hash not in repr(record)
    verified = await service.verify("ALICE@example.com", token, client_ip="192.0.2.1")
    assert verified.id == record.id
    assert (await service.verify(None, token)).id == record.id  # bearer form
    events = await service.audit.list()
    assert [e.action for e in events] == ["apptoken.create"]
    assert token not in str(events[0].detail)


@pytest.mark.parametrize(
    ("user", "tamper", "reason"),
    [
        ("bob@example.com", None, "owner_mismatch"),
        (ALICE, "secret", "wrong_secret"),
        (ALICE, "id", "unknown_id"),
    ],
)
async def test_wrong_user_secret_or_id_look_the_same(
    user: str, tamper: str | None, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service()
    record, token = await service.create(owner=ALICE, created_by=ALICE)
    if tamper is not None:
        _, other = token_format.generate()
        body = f"twa_{other.id if tamper == 'id' else record.id}_"
        body += other.secret.reveal().decode() if tamper == "secret" else token[17:39]
        token = body + token_format._check(body)
    hashes: builtins.list[str] = []
    real = token_format.hash_secret

    def spy(key: Secret, token_id: str, secret: Secret) -> str:
        hashes.append(token_id)
        return real(key, token_id, secret)

    monkeypatch.setattr(token_format, "hash_secret", spy)
    with pytest.raises(Unauthorized) as info:
        await service.verify(user, token, client_ip="192.0.2.1")
    assert info.value.error_code == "apptoken_invalid"
    assert info.value.detail == "invalid user name or app token"
    # One HMAC for a known id whatever was wrong; none for an unknown id (ids are public, docs/app-tokens.md).
    assert len(hashes) == (0 if reason == "unknown_id" else 1)
    failed = await service.audit.list(action="apptoken.verify_failed")
    assert failed[0].detail["reason"] == reason


async def test_expired_and_revoked_tokens() -> None:
    clock = Clock()
    service = make_service(clock=clock)
    _, token = await service.create(owner=ALICE, created_by=ALICE, expiry=timedelta(seconds=30))
    clock.advance(31)
    assert await _codes(service.verify(ALICE, token)) == "apptoken_expired"
    record2, token2 = await service.create(owner=ALICE, created_by=ALICE)
    await service.verify(ALICE, token2)  # cached now
    await service.revoke(record2.id, owner=ALICE, actor=ALICE)
    assert await _codes(service.verify(ALICE, token2)) == "apptoken_revoked"  # same instance: at once
    with pytest.raises(NotFound) as info:
        await service.revoke(record2.id, owner=ALICE, actor=ALICE)
    assert info.value.error_code == "apptoken_not_found"


async def test_malformed_and_checksum_failures_count_as_failures() -> None:
    service = make_service()
    assert await _codes(service.verify(ALICE, "not-a-token")) == "apptoken_malformed"
    token, _ = token_format.generate()
    assert await _codes(service.verify(ALICE, token[:-1] + ("A" if token[-1] != "A" else "B"))) == "apptoken_checksum"
    assert await _codes(service.verify(ALICE, "x" * 5000)) == "apptoken_malformed"
    assert await _codes(service.verify(ALICE, "still-not")) == "too_many_attempts"


async def test_three_failures_ban_the_address_never_the_account() -> None:
    """Issue 15 #3: three wrong tokens for a known user name no longer lock that user out from everywhere."""
    clock = Clock()
    service = make_service(clock=clock)
    _, token = await service.create(owner=ALICE, created_by=ALICE)
    _, bob_token = await service.create(owner="bob@example.com", created_by="bob@example.com")
    for _ in range(3):
        assert await _codes(service.verify(ALICE, token[:-6] + "AAAAAA", client_ip="192.0.2.1")) != "ok"
    # Alice, from her own address, is not locked out ...
    assert await _codes(service.verify(ALICE, token, client_ip="198.51.100.7")) == "ok"
    # ... the guesser's address is, for every user (no (alice, address) pair is counted: the address's ban covers it).
    with pytest.raises(TooManyRequests) as info:
        await service.verify(ALICE, token, client_ip="192.0.2.1")
    assert info.value.error_code == "too_many_attempts" and info.value.retry_after == 300
    assert info.value.headers() == {"Retry-After": "300"}
    assert await _codes(service.verify("bob@example.com", bob_token, client_ip="192.0.2.1")) == "too_many_attempts"
    assert await _codes(service.verify("bob@example.com", bob_token, client_ip="198.51.100.7")) == "ok"
    clock.advance(299)
    assert await _codes(service.verify(ALICE, token, client_ip="192.0.2.1")) == "too_many_attempts"
    clock.advance(2)
    assert await _codes(service.verify(ALICE, token, client_ip="192.0.2.1")) == "ok"
    bans = await service.audit.list(action="regulation.ban")
    assert sorted(e.subject or "" for e in bans) == ["ip:192.0.2.1"]


async def test_without_a_client_address_the_account_from_nowhere_is_banned_not_the_account() -> None:
    """No address (a Unix socket, no trusted hop): the hard key is the (account, no address) pair."""
    clock = Clock()
    service = make_service(clock=clock)
    _, token = await service.create(owner=ALICE, created_by=ALICE)
    _, bob_token = await service.create(owner="bob@example.com", created_by="bob@example.com")
    for _ in range(3):
        assert await _codes(service.verify(ALICE, token[:-6] + "AAAAAA")) != "ok"
    assert await _codes(service.verify(ALICE, token)) == "too_many_attempts"
    assert await _codes(service.verify(ALICE, token, client_ip="198.51.100.7")) == "ok"
    assert await _codes(service.verify("bob@example.com", bob_token)) == "ok"
    bans = await service.audit.list(action="regulation.ban")
    assert [e.subject for e in bans] == ["pair:alice@example.com|-"]


def _with_secret(token_id: str) -> str:
    """A well-formed token (right checksum) for ``token_id`` with a fresh random secret: a wrong secret."""
    _, other = token_format.generate()
    body = f"twa_{token_id}_{other.secret.reveal().decode()}"
    return body + token_format._check(body)


async def test_an_account_over_its_soft_limit_answers_failures_late_and_right_tokens_at_once() -> None:
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RegulationPolicy(soft_max_failures=4)
    service = make_service(clock=clock, policy=policy, sleep=sleep, config=AppTokenConfig(account_failure_delay=1.5))
    record, token = await service.create(owner=ALICE, created_by=ALICE)
    # A distributed guesser at alice's token: one wrong secret from each of four addresses (none reaches its limit).
    for i in range(3):
        assert await _codes(service.verify(ALICE, _with_secret(record.id), client_ip=f"203.0.113.{i}")) != "ok"
    assert slept == []
    assert await _codes(service.verify(ALICE, _with_secret(record.id), client_ip="203.0.113.3")) != "ok"
    assert slept == [1.5]  # from the soft limit on, failures answer late ...
    assert await _codes(service.verify(ALICE, token, client_ip="198.51.100.7")) == "ok"  # ... right tokens do not
    assert await _codes(service.verify(ALICE, token, client_ip="203.0.113.0")) == "ok"
    assert slept == [1.5]
    # Every failure of the account answers late meanwhile, guess or not: the delay tells nothing about the token.
    assert await _codes(service.verify(ALICE, "twa_nope", client_ip="203.0.113.9")) == "apptoken_malformed"
    _, stranger = token_format.generate()
    unknown_id = _with_secret(stranger.id)
    assert await _codes(service.verify(ALICE, unknown_id, client_ip="203.0.113.10")) == "apptoken_invalid"
    assert slept == [1.5, 1.5, 1.5]


async def test_only_a_guess_at_a_token_that_exists_counts_for_the_account() -> None:
    """A malformed token, a bad checksum or an unknown id fails whatever its secret: it is no guess at the account's
    token, so it counts for its address alone (one key and one row per refusal of a flood, not two)."""
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RegulationPolicy(soft_max_failures=2)
    service = make_service(clock=clock, policy=policy, sleep=sleep, config=AppTokenConfig(account_failure_delay=1.5))
    record, token = await service.create(owner=ALICE, created_by=ALICE)
    for i in range(20):
        _, stranger = token_format.generate()
        guesses = ("twa_nope", token[:-6] + "AAAAAA", _with_secret(stranger.id))
        assert await _codes(service.verify(ALICE, guesses[i % 3], client_ip=f"203.0.113.{i}")) != "ok"
    assert slept == []
    assert service.regulator._tracks.keys() == {f"ip:203.0.113.{i}" for i in range(20)}
    await service.regulator.regulation.flush(clock())
    assert not service.regulator.banned("user:alice@example.com", clock())
    # A wrong secret for alice's real id is a guess: two of them put the account over its soft limit.
    for i in range(2):
        assert await _codes(service.verify(ALICE, _with_secret(record.id), client_ip=f"198.51.100.{i}")) != "ok"
    assert slept == [1.5]
    assert "user:alice@example.com" in service.regulator._tracks


async def test_failures_outside_the_window_do_not_ban() -> None:
    clock = Clock()
    service = make_service(clock=clock)
    for _ in range(4):
        assert await _codes(service.verify(ALICE, "bad", client_ip="192.0.2.1")) == "apptoken_malformed"
        clock.advance(61)


async def test_verification_is_answered_from_memory_and_last_used_is_written_behind() -> None:
    clock = Clock()
    store = CountingStore()
    _, audit, regulation = stores(None)
    service = make_service(clock=clock, shared=(store, audit, regulation), config=AppTokenConfig(last_used_interval=60))
    record, token = await service.create(owner=ALICE, created_by=ALICE)
    other = make_service(clock=clock, shared=(store, audit, regulation))  # an instance that never saw it
    for _ in range(100):
        await service.verify(ALICE, token)
        await other.verify(ALICE, token)
    assert store.gets == 1 and store.touches == 0  # the creator holds it; the other read it once
    clock.advance(3600)  # no time to live: an hour later, still from memory
    await service.verify(ALICE, token)
    await other.verify(ALICE, token)
    assert store.gets == 1 and store.touches == 0
    # Not yet written, but the list already shows it.
    assert [r.last_used_at for r in await service.list(ALICE)] == [_at(clock.now)]
    assert await service.flush_last_used() == 1
    assert store.touches == 1
    stored = await store.get(record.id)
    assert stored is not None and stored.last_used_at == _at(clock.now)
    assert await service.flush_last_used() == 0 and store.touches == 1  # nothing pending: no statement


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


async def test_revocation_on_another_instance_is_honoured_after_its_next_poll(store_database: Database | None) -> None:
    clock = Clock()
    shared = stores(store_database)
    a = make_service(clock=clock, shared=shared)
    b = make_service(clock=clock, shared=shared)
    await b.feed.start()
    record, token = await a.create(owner=ALICE, created_by=ALICE)
    await b.verify(ALICE, token)
    await a.revoke(record.id, owner=ALICE, actor=ALICE)
    assert await _codes(a.verify(ALICE, token)) == "apptoken_revoked"  # the writer at once
    assert await _codes(b.verify(ALICE, token)) == "ok"  # held, until the feed brings the change
    await b.feed.poll()
    assert await _codes(b.verify(ALICE, token)) == "apptoken_revoked"


async def test_a_ban_on_one_instance_is_honoured_by_another(store_database: Database | None) -> None:
    clock = Clock()
    shared = stores(store_database)
    a = make_service(clock=clock, shared=shared)
    b = make_service(clock=clock, shared=shared)
    _, token = await a.create(owner=ALICE, created_by=ALICE)
    await b.verify(ALICE, token)
    for _ in range(3):
        await _codes(a.verify(ALICE, "bad"))
    await a.regulator.regulation.flush(clock())  # what a serving instance does every second
    clock.advance(1.0)
    assert await _codes(b.verify(ALICE, token)) == "too_many_attempts"


async def test_time_code_plays_no_part_but_the_app_token_key_does() -> None:
    shared = stores(None)
    a = make_service(shared=shared)
    other = make_service(shared=shared, key=Secret(b"x" * 32))
    _, token = await a.create(owner=ALICE, created_by=ALICE)
    assert await _codes(other.verify(ALICE, token)) == "apptoken_invalid"


async def test_create_validation_and_limits() -> None:
    service = make_service(config=AppTokenConfig(max_per_user=2, max_expiry=timedelta(days=30)))
    with pytest.raises(BadRequest) as info:
        await service.create(owner=ALICE, created_by=ALICE, expiry=timedelta(days=31))
    assert info.value.error_code == "expiry_too_long"
    with pytest.raises(BadRequest) as info:
        await service.create(owner=ALICE, created_by=ALICE, label="a\nb")
    assert info.value.error_code == "label_invalid"
    with pytest.raises(BadRequest) as info:
        await service.create(owner="not a user", created_by=ALICE)
    assert info.value.error_code == "user_invalid"
    with pytest.raises(BadRequest) as info:
        await service.create(owner=ALICE, created_by=ALICE, scopes=["bad scope"])
    assert info.value.error_code == "scope_invalid"
    await service.create(owner=ALICE, created_by=ALICE)
    await service.create(owner=ALICE, created_by=ALICE)
    with pytest.raises(Conflict) as conflict:
        await service.create(owner=ALICE, created_by=ALICE)
    assert conflict.value.error_code == "apptoken_limit"


async def test_get_and_resolve_reference() -> None:
    service = make_service()
    record, token = await service.create(owner=ALICE, created_by=ALICE)
    assert (await service.get(record.id, owner=ALICE)).id == record.id
    for ref in (token, "twa_" + record.id, record.id):
        assert service.resolve_reference(ref) == record.id
    with pytest.raises(NotFound):
        await service.get(record.id, owner="bob@example.com")
    with pytest.raises(NotFound):
        service.resolve_reference("nonsense")


async def test_concurrent_cold_checks_share_one_store_read() -> None:
    """When many requests arrive for a token whose cache entry expired, the store is read once."""
    import asyncio

    shared = stores(None)
    service = make_service(shared=shared)
    record, token = await service.create(owner="alice@example.com", created_by="alice@example.com")
    service.forget(record.id)
    store = shared[0]
    reads = 0
    real_get = store.get

    async def counting_get(token_id: str) -> AppTokenRecord | None:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        return await real_get(token_id)

    store.get = counting_get  # type: ignore[method-assign]
    records = await asyncio.gather(*(service.verify("alice@example.com", token) for _ in range(20)))
    assert {r.owner for r in records} == {"alice@example.com"}
    assert reads == 1
