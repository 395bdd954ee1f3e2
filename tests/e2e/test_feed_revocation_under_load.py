"""Revocations across three instances under load: once an instance's feed has passed a revocation, it never
accepts that token again.

Three `tokenward serve` processes share one database (PostgreSQL without and with Redis, MariaDB).
Client threads keep every instance busy with `/verify` (``app_token`` plugin), rotating over many app
tokens that every instance has accepted (so each holds them in memory). Meanwhile tokens are revoked, three
at a time, one on each instance at once (their change-log entries may commit out of order). For each
revocation the test reads its seq from ``change_log`` and waits (generous deadline, no timing asserted) until
each instance's ``/metrics`` shows its feed past that seq with no hole outstanding. From that moment on,
strictly, no request sent to that instance with that token is accepted. Tokens not revoked are never
refused with 401 along the way.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.feedcluster import FeedCluster, error_of, feed_cluster, require_redis, wait_until

pytestmark = [pytest.mark.slow]

NAMES = ("a", "b", "c")
TOKENS = 36
ROUNDS = 3  # each revokes one token on each instance, concurrently
WORKERS_PER_INSTANCE = 2
DEADLINE = 60.0  # a readiness wait: an instance applying a change, on a loaded machine


@dataclass(frozen=True, slots=True)
class Answer:
    name: str
    index: int
    sent: float  # monotonic, taken before the request is sent
    status: int  # 0: no answer (transport error)
    error: object


class Load:
    """Threads sending `/verify` to every instance, each rotating over all the tokens, until stopped."""

    def __init__(self, cluster: FeedCluster, tokens: list[str]) -> None:
        self.cluster, self.tokens = cluster, tokens
        self.answers: list[Answer] = []  # list.append is atomic: the threads share it without a lock
        self.done = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(name, w), name=f"load-{name}-{w}")
            for name in NAMES
            for w in range(WORKERS_PER_INSTANCE)
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads)

    def _run(self, name: str, worker: int) -> None:
        step = 7  # coprime with TOKENS: every token in turn, workers out of step with each other
        index = worker * (TOKENS // WORKERS_PER_INSTANCE)
        with httpx.Client(timeout=10) as client:
            while not self.done.is_set():
                index = (index + step) % TOKENS
                sent = time.monotonic()
                try:
                    r = self.cluster.verify(client, name, self.tokens[index])
                except httpx.TransportError:
                    self.answers.append(Answer(name, index, sent, 0, None))
                    continue
                self.answers.append(
                    Answer(name, index, sent, r.status_code, error_of(r) if r.status_code != 200 else None)
                )

    def accepted(self) -> set[tuple[str, int]]:
        return {(a.name, a.index) for a in list(self.answers) if a.status == 200}

    def sent_after(self, name: str, index: int, moment: float) -> int:
        return sum(1 for a in list(self.answers) if a.name == name and a.index == index and a.sent > moment)


def revoke(cluster: FeedCluster, token_id: str, name: str) -> None:
    with httpx.Client(timeout=10) as client:
        cluster.revoke(client, token_id, name)


@pytest.mark.parametrize(
    ("backend", "redis"),
    [
        pytest.param("postgresql", False, id="postgresql", marks=pytest.mark.postgres),
        pytest.param("postgresql", True, id="postgresql-redis", marks=pytest.mark.postgres),
        pytest.param("mariadb", False, id="mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_a_revoked_token_is_never_accepted_once_the_feed_has_passed_it(
    tmp_path: Path, backend: str, redis: bool
) -> None:
    env = {"TOKENWARD_REDIS_URL": require_redis()} if redis else {}
    with feed_cluster(tmp_path, backend, **env) as cluster, httpx.Client(timeout=10) as client:
        cluster.start(*NAMES)
        made = [cluster.create_token(client, NAMES[i % len(NAMES)]) for i in range(TOKENS)]
        ids, tokens = [m[0] for m in made], [m[1] for m in made]
        for name in NAMES:  # every token accepted by every instance first: each holds them all in memory
            for token in tokens:
                wait_until(lambda n=name, t=token: cluster.verify(client, n, t).status_code == 200, DEADLINE, name)

        revoked_at: dict[int, int] = {}  # token index -> seq of its revocation
        applied: dict[tuple[str, int], float] = {}  # (instance, token index) -> moment its feed had applied it
        with Load(cluster, tokens) as load:
            wait_until(
                lambda: load.accepted() >= {(n, i) for n in NAMES for i in range(TOKENS)},
                DEADLINE,
                "every token accepted under load by every instance",
            )
            for round_ in range(ROUNDS):
                batch = [round_ * len(NAMES) + k for k in range(len(NAMES))]
                revokers = [
                    threading.Thread(target=revoke, args=(cluster, ids[i], NAMES[k])) for k, i in enumerate(batch)
                ]
                for thread in revokers:
                    thread.start()
                for thread in revokers:
                    thread.join(timeout=30)
                    assert not thread.is_alive()
                for i in batch:
                    revoked_at[i] = cluster.seq_of(ids[i])
                newest = max(revoked_at[i] for i in batch)
                for name in NAMES:
                    wait_until(
                        lambda n=name, s=newest: cluster.has_applied(n, s), DEADLINE, f"{name} applies seq {newest}"
                    )
                    now = time.monotonic()
                    for i in batch:
                        applied[name, i] = now
            # keep the load on until every instance has been asked for every revoked token since
            wait_until(
                lambda: all(load.sent_after(n, i, at) >= 2 for (n, i), at in applied.items()),
                DEADLINE,
                "every revoked token asked again on every instance",
            )
            last = time.monotonic()
            wait_until(
                lambda: all(load.sent_after(n, i, last) >= 1 for n in NAMES for i in range(TOKENS)),
                DEADLINE,
                "every token asked again after the last revocation",
            )
        answers = load.answers

    assert len(revoked_at) == ROUNDS * len(NAMES)
    accepted_late = [
        a for a in answers if a.index in revoked_at and a.sent > applied[a.name, a.index] and a.status == 200
    ]
    assert not accepted_late, (
        f"revoked tokens accepted after the instance's feed had applied the revocation: {accepted_late[:5]}"
    )
    refused_as = {(a.status, a.error) for a in answers if a.index in revoked_at and a.sent > applied[a.name, a.index]}
    assert refused_as <= {(401, "apptoken_revoked"), (503, "changes_stale")}, refused_as

    # the tokens still valid were never refused as invalid, and each was accepted after the last revocation
    by_status: dict[tuple[int, object], int] = defaultdict(int)
    for a in answers:
        if a.index not in revoked_at:
            by_status[a.status, a.error] += 1
    assert set(by_status) <= {(200, None), (503, "changes_stale")}, dict(by_status)
    for name in NAMES:
        for i in set(range(TOKENS)) - set(revoked_at):
            assert any(a.status == 200 for a in answers if a.name == name and a.index == i and a.sent > last), (name, i)
