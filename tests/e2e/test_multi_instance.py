"""Many instances, one truth: three `tokenward serve` processes on loopback, one PostgreSQL, one moto S3.

A saves the configuration; B and C start with only the shared variables and the server name.
Checked: the bundle brings B and C the time code, app-token key and policies; a policy saved
from A is in force on B and C within 2 s; an app token created on A verifies on B and its
revocation on A is refused by B within 1 s; with S3 down a restarted instance serves the
last-known-good bundle and says so in /readyz; A killed (SIGKILL) in the middle of creating app
tokens loses nothing: B and C keep serving and every token whose create answered 201 works on B.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.feedcluster import feed_metrics, log_head, sync_engine
from tests.e2e.processes import env_for, free_port, start_process, stop, tokenward, wait_ready
from tests.s3server import make_bucket, start_moto
from tests.storage.servers import fresh_database_url
from tokenward.configsync import ConfigKey
from tokenward.policy import read_sources
from tokenward.policy.files import content_version

SERVER = "auth.example.com"
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@dataclass
class Cluster:
    tmp: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    def data(self, name: str) -> Path:
        return self.tmp / name

    def env_of(self, name: str) -> dict[str, str]:
        return env_for(self.data(name), **self.env)

    def cli(self, name: str, *args: str) -> str:
        done = tokenward(*args, env=self.env_of(name))
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start_all(self, *names: str) -> None:
        """Start several instances at once, then wait for each (bounded by ``wait_ready``)."""
        for name in names:
            self.start(name, wait=False)
        for name in names:
            wait_ready(self.procs[name], self.urls[name])

    def start(self, name: str, *, wait: bool = True) -> str:
        port = free_port()
        proc = start_process([sys.executable, "-m", "tokenward", "serve", "--port", str(port)], env=self.env_of(name))
        url = f"http://127.0.0.1:{port}"
        self.procs[name], self.urls[name] = proc, url
        if wait:
            wait_ready(proc, url)
        return url

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        stop(proc)

    def ready(self, name: str) -> dict[str, object]:
        body: dict[str, object] = httpx.get(self.urls[name] + "/readyz", timeout=2).json()
        return body


def policy_version_of(body: dict[str, object]) -> object:
    policy = body.get("policy")
    return policy.get("version") if isinstance(policy, dict) else None


@pytest.fixture
def moto() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    url, proc = start_moto()
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.fixture
def cluster(tmp_path: Path, moto: tuple[str, subprocess.Popen[bytes]]) -> Iterator[Cluster]:
    s3 = make_bucket(moto[0])
    with fresh_database_url("postgresql", tmp_path) as database_url:
        env = {
            "TOKENWARD_SERVER_NAME": SERVER,
            "TOKENWARD_DATABASE_URL": database_url,
            "TOKENWARD_S3_URL": moto[0],
            "TOKENWARD_S3_BUCKET": s3.bucket,
            "TOKENWARD_S3_ACCESS_KEY": str(s3.access_key),
            "TOKENWARD_S3_SECRET_KEY": str(s3.secret_key),
            "TOKENWARD_S3_TIMEOUT_SECONDS": "1",
            "TOKENWARD_CONFIG_KEY": ConfigKey.generate(),
            "TOKENWARD_CONFIG_POLL_SECONDS": "1",
        }
        cluster = Cluster(tmp_path, env)
        try:
            yield cluster
        finally:
            for name in list(cluster.procs):
                cluster.stop(name)


def wait_for(check: object, deadline: float) -> float:
    """Seconds until ``check()`` is true (polled every 20 ms); fails after ``deadline`` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        if check():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"not true within {deadline} s")


def test_three_instances_share_one_truth(cluster: Cluster, moto: tuple[str, subprocess.Popen[bytes]]) -> None:
    cluster.cli("a", "init", "--server-name", SERVER, "--admin", "root@example.com")
    out = cluster.cli("a", "config", "save")
    assert "- Time Code Saved Successfully. (sealed)" in out and "- App Token Key Saved Successfully. (sealed)" in out
    for name in ("a", "b", "c"):
        cluster.start(name)
    first = content_version(read_sources(cluster.data("a")))
    for name in ("a", "b", "c"):
        body = cluster.ready(name)
        assert body["status"] == "ready" and policy_version_of(body) == first, body
        sync = body["config_sync"]
        assert isinstance(sync, dict) and sync["source"] == "s3" and sync["version"] == 1
        assert body["timecode"] == cluster.ready("a")["timecode"]
    assert (cluster.data("b") / "timecode.json").read_bytes() == (cluster.data("a") / "timecode.json").read_bytes()

    # a policy saved from A is in force on B and C within 2 s
    with (cluster.data("a") / "userpolicy.csv").open("a") as f:
        f.write("p, dave@example.com, auth.example.com, *, login\n")
    cluster.cli("a", "config", "save")
    second = content_version(read_sources(cluster.data("a")))
    saved = time.monotonic()
    for name in ("b", "c"):
        wait_for(lambda n=name: policy_version_of(cluster.ready(n)) == second, 2.0 - (time.monotonic() - saved))

    # an app token created on A verifies on B; revoked on A, B refuses it within ~1 s
    token = cluster.cli("a", "app-token", "create", "-u", "alice@example.com", "-s", "tokenward:manage").strip()
    auth = ("alice@example.com", token)
    assert httpx.get(cluster.urls["b"] + "/auth-app/tokens", auth=auth, timeout=5).status_code == 200
    assert httpx.get(cluster.urls["c"] + "/auth-app/tokens", auth=auth, timeout=5).status_code == 200
    deleted = httpx.delete(cluster.urls["a"] + "/auth-app/tokens", params={"token": token}, auth=auth, timeout=5)
    assert deleted.status_code == 200, deleted.text
    took = wait_for(
        lambda: httpx.get(cluster.urls["b"] + "/auth-app/tokens", auth=auth, timeout=5).status_code == 401, 1.5
    )
    assert took <= 1.0

    # S3 goes down: instances keep serving; a restarted instance comes up on the last-known-good bundle
    moto[1].kill()
    moto[1].wait()
    cluster.stop("c")
    cluster.start("c")
    body = cluster.ready("c")
    sync = body["config_sync"]
    assert body["status"] == "ready" and policy_version_of(body) == second
    assert isinstance(sync, dict) and sync["source"] == "last-known-good"
    assert isinstance(sync["last_error"], dict) and sync["last_error"]["error"] == "s3_unreachable"
    assert cluster.ready("b")["status"] == "ready"


def test_killing_an_instance_mid_request_loses_nothing(cluster: Cluster) -> None:
    cluster.cli("a", "init", "--server-name", SERVER, "--admin", "root@example.com")
    cluster.cli("a", "config", "save")
    cluster.start_all("a", "b", "c")
    manager = cluster.cli("a", "app-token", "create", "-u", "alice@example.com", "-s", "tokenward:manage").strip()
    auth = ("alice@example.com", manager)

    created: list[dict[str, str]] = []
    lock = threading.Lock()

    def create_until_refused() -> None:
        # Each worker creates tokens on A until A stops answering (bounded: 20 tokens, 5 s timeouts).
        with httpx.Client(base_url=cluster.urls["a"], auth=auth, timeout=5) as client:
            for i in range(20):
                try:
                    r = client.post("/api/app-tokens", json={"label": f"k{i}", "scopes": ["tokenward:manage"]})
                except httpx.TransportError:
                    return
                if r.status_code == 201:
                    with lock:
                        created.append(r.json())

    workers = [threading.Thread(target=create_until_refused) for _ in range(4)]
    for worker in workers:
        worker.start()
    wait_for(lambda: len(created) >= 8, 15.0)
    cluster.procs["a"].kill()  # SIGKILL: no shutdown hooks, requests in flight are cut
    for worker in workers:
        worker.join(timeout=10)
        assert not worker.is_alive()
    cluster.stop("a")

    # B and C keep serving; every token whose create answered 201 works on B once B's feed has brought its entry
    # (before that, B looks up ids it does not know at most 2 times a second and refuses the rest:
    # docs/app-tokens.md). A change committed after the kill and applied by B means B's read also fetched every
    # entry committed before it, the creates A answered 201 for included, however late each committed.
    for name in ("b", "c"):
        assert cluster.ready(name)["status"] == "ready"
    assert created
    cluster.cli("c", "app-token", "create", "-u", "marker@example.com")
    engine = sync_engine(cluster.env["TOKENWARD_DATABASE_URL"])
    try:
        head = log_head(engine)
    finally:
        engine.dispose()
    wait_for(lambda: feed_metrics(cluster.urls["b"])["tokenward_changes_position"] >= head, 30.0)
    for token in created:
        r = httpx.get(cluster.urls["b"] + "/auth-app/tokens", auth=("alice@example.com", token["token"]), timeout=5)
        assert r.status_code == 200, (token["id"], r.text)
    # no half-written row: what C lists is whole, holds every 201, and at most the in-flight creates besides
    listed = httpx.get(cluster.urls["c"] + "/api/app-tokens", auth=auth, timeout=5)
    assert listed.status_code == 200, listed.text
    rows = {row["id"]: row for row in listed.json()}
    assert {t["id"] for t in created} <= set(rows)
    assert len(rows) - 1 - len(created) <= len(workers)  # 1: the manager token itself
    for row in rows.values():
        assert row["owner"] == "alice@example.com" and row["created_at"] and row["expires_at"], row
