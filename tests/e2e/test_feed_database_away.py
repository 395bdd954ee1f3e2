"""The database away from one instance: it fails closed, then converges when the database is back.

Two `tokenward serve` processes share one PostgreSQL (tests/e2e/feedcluster.py); ``c`` reaches it through a
TCP proxy (tests/e2e/tcpproxy.py) the test cuts and restores, with ``TOKENWARD_CHANGES_MAX_LAG_SECONDS=1``.
While cut, ``c`` cannot vouch that a credential was not revoked elsewhere: ``/readyz`` answers 503 with
``changes_stale`` and app tokens on ``/verify`` 503 ``changes_stale``, never a 200, even for tokens it
holds in memory. A token revoked on ``a`` meanwhile is refused by ``c`` from the moment ``c`` is ready again.
Every wait is bounded by a generous deadline; no elapsed time is asserted.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.feedcluster import database_behind_proxy, error_of, feed_cluster, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DEADLINE = 60.0  # readiness waits on a loaded machine, never a timing assertion


def _stale(r: httpx.Response) -> bool:
    checks = r.json().get("checks", {})
    return r.status_code == 503 and str(checks.get("changes")).startswith("changes_stale: no successful read")


def test_database_away_from_one_instance_fails_closed_then_converges(tmp_path: Path) -> None:
    with feed_cluster(tmp_path, "postgresql") as cluster, httpx.Client(timeout=10) as client:
        with database_behind_proxy(cluster, "c") as proxy:
            cluster.start("a", "c")
            _, kept = cluster.create_token(client)
            gone_id, gone = cluster.create_token(client)
            for token in (kept, gone):  # both in c's memory
                wait_until(lambda t=token: cluster.verify(client, "c", t).status_code == 200, DEADLINE, "accepted on c")

            proxy.cut()
            # /readyz fails at once on its own database ping; the feed says stale after max lag (1 s)
            wait_until(lambda: _stale(cluster.ready("c")), DEADLINE, "c's feed stale while cut")
            for token in (kept, gone):
                r = cluster.verify(client, "c", token)
                assert (r.status_code, error_of(r)) == (503, "changes_stale"), r.text

            cluster.revoke(client, gone_id)  # on a, which still reaches the database
            seq = cluster.seq_of(gone_id)
            for _ in range(5):  # c cannot know: it refuses rather than accept what may be revoked
                r = cluster.verify(client, "c", gone)
                assert (r.status_code, error_of(r)) == (503, "changes_stale"), r.text
            assert cluster.metrics("c")["tokenward_changes_position"] < seq

            proxy.restore()
            wait_until(lambda: cluster.ready("c").status_code == 200, DEADLINE, "c ready again")
            # Ready means a read succeeded after the restore, so after the revocation committed: applied.
            assert cluster.has_applied("c", seq)
            # Never accepted again: refused as revoked (or, should c's 1 s bound lapse on a loaded machine, as
            # stale: failing closed is right, and fresh again it says revoked).
            answers: list[httpx.Response] = []

            def refused_as_revoked() -> bool:
                answers.append(cluster.verify(client, "c", gone))
                return (answers[-1].status_code, error_of(answers[-1])) == (401, "apptoken_revoked")

            wait_until(refused_as_revoked, DEADLINE, "gone refused as revoked on c")
            refused = {(r.status_code, error_of(r)) for r in answers}
            assert refused <= {(401, "apptoken_revoked"), (503, "changes_stale")}, [r.text for r in answers]
            wait_until(lambda: cluster.verify(client, "c", kept).status_code == 200, DEADLINE, "kept accepted on c")
            assert proxy.refused > 0  # the cut was real: c tried to reach the database meanwhile
            assert "cannot read the change log" in cluster.log_of("c")
