"""Propagation benchmark: `config save` → enforced on N instances, and app-token revocation latency.

    .venv/bin/python bench/propagation.py                    # 3 instances, default 2 s poll, 5 rounds
    .venv/bin/python bench/propagation.py --instances 5 --poll 1 --rounds 10

Starts a moto S3 server and a throwaway PostgreSQL database (the test helpers'), initialises
instance A, saves the bundle and starts N `tokenward serve` processes on 127.0.0.1 sharing
both. **policy**: a row is appended to A's userpolicy.csv and `tokenward config save` run; the
clock starts when the command returns and stops when every instance's `/readyz` reports the new
policy version (polled every 10 ms). **revocation**: an app token created on A is verified on
every instance (warming their caches), deleted through A's API, and the clock stops when every
instance answers 401. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.test_multi_instance import SERVER, Cluster, policy_version_of
from tests.s3server import make_bucket, start_moto
from tests.storage.servers import fresh_database_url

from tokenward.configsync import ConfigKey
from tokenward.policy import content_version, read_sources


def until_all(names: list[str], check: object, limit: float = 30.0) -> float:
    start = time.monotonic()
    pending = set(names)
    while pending and time.monotonic() - start < limit:
        pending = {n for n in pending if not check(n)}  # type: ignore[operator]
        if pending:
            time.sleep(0.01)
    if pending:
        raise SystemExit(f"instances {sorted(pending)} did not converge within {limit} s")
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--poll", type=float, default=2.0, help="TOKENWARD_CONFIG_POLL_SECONDS")
    args = parser.parse_args()
    moto_url, moto = start_moto()
    try:
        with tempfile.TemporaryDirectory() as tmp, fresh_database_url("postgresql", Path(tmp)) as database_url:
            s3 = make_bucket(moto_url)
            env = {
                "TOKENWARD_SERVER_NAME": SERVER,
                "TOKENWARD_DATABASE_URL": database_url,
                "TOKENWARD_S3_URL": moto_url,
                "TOKENWARD_S3_BUCKET": s3.bucket,
                "TOKENWARD_S3_ACCESS_KEY": str(s3.access_key),
                "TOKENWARD_S3_SECRET_KEY": str(s3.secret_key),
                "TOKENWARD_CONFIG_KEY": ConfigKey.generate(),
                "TOKENWARD_CONFIG_POLL_SECONDS": str(args.poll),
            }
            cluster = Cluster(Path(tmp), env)
            names = [chr(ord("a") + i) for i in range(args.instances)]
            try:
                cluster.cli("a", "init", "--server-name", SERVER)
                cluster.cli("a", "config", "save")
                for name in names:
                    cluster.start(name)
                policy: list[float] = []
                for i in range(args.rounds):
                    with (cluster.data("a") / "userpolicy.csv").open("a") as f:
                        f.write(f"p, bench{i}@example.com, {SERVER}, *, login\n")
                    cluster.cli("a", "config", "save")
                    want = content_version(read_sources(cluster.data("a")))
                    policy.append(until_all(names, lambda n, w=want: policy_version_of(cluster.ready(n)) == w))
                revoke: list[float] = []
                for _ in range(args.rounds):
                    token = cluster.cli("a", "app-token", "create", "-u", "bench@example.com", "-s", "tokenward:manage")
                    auth = ("bench@example.com", token.strip())

                    def status(n: str, auth: tuple[str, str] = auth) -> int:
                        return httpx.get(cluster.urls[n] + "/auth-app/tokens", auth=auth, timeout=5).status_code

                    assert all(status(n) == 200 for n in names)
                    httpx.delete(cluster.urls["a"] + "/auth-app/tokens", params={"token": auth[1]}, auth=auth)
                    revoke.append(until_all(names, lambda n, s=status: s(n) == 401))
            finally:
                for name in list(cluster.procs):
                    cluster.stop(name)
    finally:
        moto.kill()
        moto.wait()
    print(f"{args.instances} instances, poll {args.poll} s, {args.rounds} rounds")
    for label, values in (("config save → enforced everywhere", policy), ("revocation → refused everywhere", revoke)):
        print(f"{label:<36} median {statistics.median(values):.3f} s  max {max(values):.3f} s  min {min(values):.3f} s")


if __name__ == "__main__":
    main()
