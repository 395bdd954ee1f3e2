"""Gaps in the change feed converge: Redis away and back, an instance restarted mid-feed.

Real `tokenward serve` processes on 127.0.0.1 share one PostgreSQL (tests/e2e/feedcluster.py); the
database cut from one instance is tests/e2e/test_feed_database_away.py.

- the database silent from ``c`` (packets dropped, connections forgotten: a TCP proxy,
  tests/e2e/tcpproxy.py, that stops answering) and then back: ``c``'s feed is stale meanwhile, and once
  new connections get through it reads again, however long its reads on the old connections would wait;
- Redis cut and restored (a TCP proxy, tests/e2e/tcpproxy.py, between the instances and Redis): the
  wake-ups are lost, polling still brings every revocation;
- ``b`` killed and restarted while ``a`` keeps creating and revoking tokens: once ``b``'s feed has passed
  the log's head it accepts exactly the tokens that are still valid.

Every wait is bounded by a generous deadline; no elapsed time is asserted.
"""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.feedcluster import (
    FeedCluster,
    database_behind_proxy,
    error_of,
    feed_cluster,
    require_redis,
    wait_until,
)
from tests.e2e.tcpproxy import tcp_proxy

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DEADLINE = 60.0  # readiness waits on a loaded machine, never a timing assertion


def _applied(cluster: FeedCluster, name: str, seq: int) -> None:
    wait_until(lambda: cluster.has_applied(name, seq), DEADLINE, f"{name} applies seq {seq}")


def _stale(r: httpx.Response) -> bool:
    checks = r.json().get("checks", {})
    return r.status_code == 503 and str(checks.get("changes")).startswith("changes_stale: no successful read")


def _ready_again(cluster: FeedCluster, name: str) -> None:
    last: list[httpx.Response] = []

    def ready() -> bool:
        last.append(cluster.ready(name))
        return last[-1].status_code == 200

    try:
        wait_until(ready, DEADLINE, f"{name} ready")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; /readyz: {last[-1].text}; log: {cluster.log_of(name)[-3000:]}") from None


def test_database_silent_from_one_instance_then_back_converges(tmp_path: Path) -> None:
    with feed_cluster(tmp_path, "postgresql") as cluster, httpx.Client(timeout=10) as client:
        with database_behind_proxy(cluster, "c") as proxy:
            cluster.start("a", "c")
            token_id, token = cluster.create_token(client)
            wait_until(lambda: cluster.verify(client, "c", token).status_code == 200, DEADLINE, "accepted on c")

            proxy.silence()
            wait_until(lambda: _stale(cluster.ready("c")), DEADLINE, "c's feed stale while the database is silent")
            cluster.revoke(client, token_id)  # on a, which still reaches the database
            seq = cluster.seq_of(token_id)
            assert cluster.metrics("c")["tokenward_changes_position"] < seq

            proxy.restore()  # new connections get through; those open during the silence never answer again
            _ready_again(cluster, "c")
            # Ready means a read succeeded after the restore, so after the revocation committed: applied.
            assert cluster.has_applied("c", seq)
            assert proxy.unanswered + proxy.forwarded > 0


def test_redis_away_and_back_wake_ups_lost_polling_converges(tmp_path: Path) -> None:
    redis = urlsplit(require_redis())
    with tcp_proxy(redis.hostname or "127.0.0.1", redis.port or 6379) as proxy:
        via_proxy = redis._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
        with feed_cluster(tmp_path, "postgresql", TOKENWARD_REDIS_URL=via_proxy) as cluster:
            with httpx.Client(timeout=10) as client:
                cluster.start("a", "b")
                made = [cluster.create_token(client) for _ in range(4)]
                for _, token in made:
                    wait_until(lambda t=token: cluster.verify(client, "b", t).status_code == 200, DEADLINE, "on b")

                def revoke_and_check(index: int) -> None:
                    token_id, token = made[index]
                    cluster.revoke(client, token_id)
                    _applied(cluster, "b", cluster.seq_of(token_id))
                    r = cluster.verify(client, "b", token)
                    assert (r.status_code, error_of(r)) == (401, "apptoken_revoked"), r.text

                revoke_and_check(0)  # Redis up
                proxy.cut()
                revoke_and_check(1)  # the wake-up is lost; b polls
                assert cluster.verify(client, "b", made[3][1]).status_code == 200  # b keeps serving
                proxy.restore()
                revoke_and_check(2)
                assert cluster.verify(client, "b", made[3][1]).status_code == 200
                for name in ("a", "b"):
                    assert cluster.ready(name).status_code == 200
                assert proxy.refused > 0  # the cut was real: the instances tried to reach Redis meanwhile


#: Live tokens the writer keeps at most: the owner may hold 100 (TOKENWARD_APP_TOKENS_MAX_PER_USER).
LIVE_AT_MOST = 40


def test_instance_restarted_mid_feed_converges(tmp_path: Path) -> None:
    with feed_cluster(tmp_path, "postgresql") as cluster, httpx.Client(timeout=10) as client:
        cluster.start("a", "b")
        tokens: dict[str, tuple[str, bool]] = {}  # id -> (token, revoked)
        done = threading.Event()
        failures: list[BaseException] = []

        def write() -> None:  # on a: create tokens, revoke every other one, until told to stop
            try:
                with httpx.Client(timeout=10) as writer:
                    while not done.is_set():
                        token_id, token = cluster.create_token(writer)
                        tokens[token_id] = (token, False)
                        if len(tokens) % 2 == 0:
                            cluster.revoke(writer, token_id)
                            tokens[token_id] = (token, True)
                        live = [tid for tid, (_, revoked) in tokens.items() if not revoked]
                        if len(live) >= LIVE_AT_MOST:  # stay under the owner's live-token limit (100) on a slow run
                            cluster.revoke(writer, live[0])
                            tokens[live[0]] = (tokens[live[0]][0], True)
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=write, name="feed-writer")
        thread.start()
        try:
            wait_until(lambda: len(tokens) >= 6 or bool(failures), DEADLINE, "writes before the restart")
            cluster.kill("b")
            wait_until(lambda: len(tokens) >= 12 or bool(failures), DEADLINE, "writes while b is down")
            cluster.start("b")  # the writes go on while b starts and loads
            seen = len(tokens)
            wait_until(lambda: len(tokens) >= seen + 6 or bool(failures), DEADLINE, "writes after b is back")
        finally:
            done.set()
            thread.join(timeout=30)
        assert not thread.is_alive() and not failures, failures

        _applied(cluster, "b", cluster.head())
        for token_id, (token, revoked) in tokens.items():
            r = cluster.verify(client, "b", token)
            expected = (401, "apptoken_revoked") if revoked else (200, None)
            assert (r.status_code, error_of(r) if r.status_code != 200 else None) == expected, (token_id, r.text)
        assert sum(revoked for _, revoked in tokens.values()) >= 9
