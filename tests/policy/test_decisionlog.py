"""The decision log: sampling, the ring bound, pseudonyms, deciding rows, and the questions feeding it."""

from __future__ import annotations

import itertools
import re

import pytest

from tokenward.policy import PolicyHolder, build_policy, can_login, captcha_enabled, is_admin, resolve_scopes
from tokenward.policy.decisionlog import DecisionLog, DecisionRecord, pseudonym
from tokenward.policy.diff import what_if

KEY = b"k" * 32
SERVER = "auth.example.com"
USERS = (
    "p, *@example.com, auth.example.com, APP1, login\n"
    "p, eve@example.com, auth.example.com, APP1, deny\n"
    "p, alice@example.com, auth.example.com, TOKENWARD, admin\n"
)


def holder_with(log: DecisionLog) -> PolicyHolder:
    holder = PolicyHolder(
        policy=build_policy(
            {
                "userpolicy.csv": USERS.encode(),
                "captchapolicy.csv": b"p, *@example.com, auth.example.com, CAPTCHA, enable\n",
                "clientscopespolicy.csv": b"p, *@example.com, HASH1, APP1, READ\n",
            }
        )
    )
    holder.set_observer(log.observe)
    return holder


def test_every_question_is_recorded_with_its_deciding_row() -> None:
    log = DecisionLog(hash_mode="off", clock=lambda: 1000.0)
    policy = holder_with(log).policy
    assert can_login(policy, "carol@example.com", SERVER, "APP1")
    assert not can_login(policy, "eve@example.com", SERVER, "APP1")
    assert not can_login(policy, "dave@other.org", SERVER, "APP1")
    assert captcha_enabled(policy, "carol@example.com", SERVER)
    assert is_admin(policy, "alice@example.com", SERVER)
    assert resolve_scopes(policy, "carol@example.com", "HASH1", "APP1", ["READ", "WRITE"]) == {"READ"}
    records = log.records()
    summary = [(r.file, r.sub, r.act, r.decision) for r in records]
    assert summary == [
        ("userpolicy.csv", "carol@example.com", "login", "allow"),
        ("userpolicy.csv", "eve@example.com", "login", "deny"),
        ("userpolicy.csv", "dave@other.org", "login", "deny"),
        ("captchapolicy.csv", "carol@example.com", "enable", "allow"),
        ("userpolicy.csv", "alice@example.com", "admin", "allow"),
        ("clientscopespolicy.csv", "carol@example.com", "READ", "allow"),
        ("clientscopespolicy.csv", "carol@example.com", "WRITE", "deny"),
    ]
    assert records[0].row == "userpolicy.csv:1  p, *@example.com, auth.example.com, APP1, login"
    assert records[1].row == "userpolicy.csv:2  p, eve@example.com, auth.example.com, APP1, deny"
    assert records[2].row == ""
    assert all(r.at == 1000.0 and r.dialect == "glob" and r.version == policy.short_version for r in records)
    assert DecisionRecord.from_json(records[1].to_json()) == records[1]


def test_the_observer_survives_a_reload() -> None:
    log = DecisionLog(hash_mode="off")
    holder = holder_with(log)
    assert holder.apply({"userpolicy.csv": b"p, *@example.com, auth.example.com, APP2, login\n"}).changed
    can_login(holder.policy, "carol@example.com", SERVER, "APP2")
    assert [r.obj for r in log.records()] == ["APP2"]


def test_sampling_keeps_the_share_the_random_source_allows() -> None:
    draws = itertools.cycle([0.05, 0.5, 0.95, 0.2])
    log = DecisionLog(sample_rate=0.25, hash_mode="off", rng=lambda: next(draws))
    policy = holder_with(log).policy
    for i in range(8):
        can_login(policy, f"user{i}@example.com", SERVER, "APP1")
    assert [r.sub for r in log.records()] == [
        "user0@example.com",
        "user3@example.com",
        "user4@example.com",
        "user7@example.com",
    ]
    assert log.seen == 8 and log.kept == 4


def test_ring_and_pending_are_bounded() -> None:
    log = DecisionLog(size=3, pending_limit=2, hash_mode="off")
    policy = holder_with(log).policy
    for i in range(5):
        can_login(policy, f"user{i}@example.com", SERVER, "APP1")
    assert [r.sub for r in log.records()] == ["user2@example.com", "user3@example.com", "user4@example.com"]
    assert [r.sub for r in log.records(limit=1)] == ["user4@example.com"]
    assert [r.sub for r in log.take_pending()] == ["user3@example.com", "user4@example.com"]
    assert log.dropped == 3 and log.take_pending() == []


def test_subjects_are_pseudonymous_by_default() -> None:
    log = DecisionLog(hash_key=KEY)
    policy = holder_with(log).policy
    can_login(policy, "carol@example.com", SERVER, "APP1")
    from tokenward.policy import can_ask

    can_ask(policy, "carol@example.com", "bob@example.com", "APP1")
    first, second = log.records()
    assert re.fullmatch(r"h-[0-9a-f]{24}@example\.com", first.sub)
    assert "carol" not in str(first.to_json()) and "bob" not in str(second.to_json())
    assert second.sub == first.sub and second.dom.endswith("@example.com")  # one person, one pseudonym
    assert first.dom == SERVER  # hosts are not personal
    assert pseudonym("carol@example.com", KEY, "local") != pseudonym("carol@example.com", b"j" * 32, "local")
    assert "@" not in pseudonym("carol@example.com", KEY, "full")
    assert pseudonym("myresource.server", KEY, "local").startswith("h-")
    assert pseudonym("carol@example.com", KEY, "off") == "carol@example.com"
    with pytest.raises(ValueError, match="hash key"):
        DecisionLog(hash_mode="local", hash_key=b"short")


def test_recorded_pseudonymous_questions_replay_against_a_wildcard_change() -> None:
    log = DecisionLog(hash_key=KEY)
    policy = holder_with(log).policy
    can_login(policy, "carol@example.com", SERVER, "APP1")
    changed = USERS + "p, *@example.com, auth.example.com, APP1, deny\n"
    result = what_if(policy, {"userpolicy.csv": changed.encode()}, recorded=[r.probe() for r in log.records()])
    recorded_sub = log.records()[0].sub
    flipped = [flip.probe.sub for group in result.groups for flip in group.examples]
    assert recorded_sub in flipped
    (group,) = result.groups
    assert group.row == "p, *@example.com, auth.example.com, APP1, deny" and group.change == "added"


def test_a_failing_observer_never_changes_a_decision(caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("sink exploded")

    holder = PolicyHolder(policy=build_policy({"userpolicy.csv": USERS.encode()}))
    holder.set_observer(broken)
    assert can_login(holder.policy, "carol@example.com", SERVER, "APP1")
    assert not can_login(holder.policy, "eve@example.com", SERVER, "APP1")
    assert "observer failed" in caplog.text
