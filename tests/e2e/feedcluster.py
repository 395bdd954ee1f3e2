"""Instances following one change log: `tokenward serve` processes on 127.0.0.1 sharing a database.

No S3 here: ``a``'s data dir (time code, app-token key, policies) is copied to the others, as an operator
would without a config bundle. Each instance can get its own variables (a database or Redis URL through
a :mod:`tests.e2e.tcpproxy`, a short ``TOKENWARD_CHANGES_MAX_LAG_SECONDS``). The helpers read an instance's
feed from ``/metrics`` and the change log straight from SQL, so a test can say "this instance has applied
that revocation" without guessing how long it takes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tests.e2e.processes import env_for, free_port, process_log, start_process, stop, wait_ready
from tests.e2e.tcpproxy import TcpProxy, tcp_proxy
from tests.helpers import missing
from tests.storage.servers import REDIS_START, REDIS_URL, fresh_database_url
from tokenward.storage.changes import ChangeLogRow

__all__ = ["OWNER", "FeedCluster", "database_behind_proxy", "feed_cluster", "require_redis", "wait_until"]

OWNER = "feed@example.com"
FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/wiki/page",
    "X-Forwarded-Method": "GET",
}
_SYNC_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mysql+pymysql"}


def sync_engine(database_url: str) -> sqlalchemy.Engine:
    """A synchronous engine on the instances' database, for reading the change log from the test."""
    url = make_url(database_url)
    return sqlalchemy.create_engine(url.set(drivername=_SYNC_DRIVERS[url.get_backend_name()]))


def log_head(engine: sqlalchemy.Engine) -> int:
    """The change log's highest seq (0 when empty)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(ChangeLogRow.seq))).scalar_one() or 0)


def feed_metrics(base_url: str) -> dict[str, float]:
    """The ``tokenward_changes_*`` figures of the instance at ``base_url`` (its change feed, seen from outside)."""
    text = httpx.get(base_url + "/metrics", timeout=5).text
    return {m[1]: float(m[2]) for m in re.finditer(r"^(tokenward_changes_\w+) (\S+)$", text, re.MULTILINE)}


def wait_until(check: Callable[..., object], deadline: float, what: str) -> None:
    """Poll ``check`` every 20 ms until it is truthy; fail naming ``what`` after ``deadline`` seconds.

    A readiness wait, not a timing assertion: deadlines are generous (a loaded 2-core machine).
    """
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {deadline} s")
        time.sleep(0.02)


def require_redis() -> str:
    """The Redis URL of the test machines; skips (fails under ``CI=true``) when nothing answers there."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        missing(f"Redis is not reachable on 127.0.0.1:6379 ({type(exc).__name__}); start one: {REDIS_START}")
    return REDIS_URL


@dataclass
class FeedCluster:
    tmp: Path
    server: str
    database_url: str
    env: dict[str, str]
    engine: sqlalchemy.Engine
    procs: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    #: Variables of one instance only (its database or Redis through a proxy, a shorter max lag).
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Set by :func:`feed_cluster`: ``/verify?config_token=…`` (``app_token`` plugin) and the manager's auth.
    verify_path: str = ""
    manage: tuple[str, str] = ("", "")

    def data(self, name: str) -> Path:
        path = self.tmp / name
        if name != "a" and not path.exists():
            shutil.copytree(self.tmp / "a", path)
        return path

    def env_of(self, name: str, **extra: str) -> dict[str, str]:
        return env_for(self.data(name), **{**self.env, **extra})

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """``tokenward *args`` on ``a``'s data dir, in this process (a fresh interpreter costs seconds)."""
        from typer.testing import CliRunner

        from tokenward.cli.main import app

        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("TOKENWARD_")}
        env.update(TOKENWARD_DATA_DIR=str(self.tmp / "a"), **self.env)
        done = CliRunner().invoke(app, list(args), input=stdin, env=env)
        assert done.exit_code == 0, done.output
        return done.stdout

    def start(self, *names: str) -> None:
        """Start ``names`` (each with its :attr:`overrides`) together, then wait for each to be ready."""
        for name in names:
            port = free_port()
            command = [sys.executable, "-m", "tokenward", "serve", "--port", str(port)]
            self.procs[name] = start_process(command, env=self.env_of(name, **self.overrides.get(name, {})))
            self.urls[name] = f"http://127.0.0.1:{port}"
        for name in names:
            wait_ready(self.procs[name], self.urls[name])

    def stop(self, name: str) -> None:
        stop(self.procs.pop(name))

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hooks, whatever was in flight is cut."""
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait(timeout=15)
        stop(proc)

    def log_of(self, name: str) -> str:
        return process_log(self.procs[name])

    def ready(self, name: str) -> httpx.Response:
        return httpx.get(self.urls[name] + "/readyz", timeout=30)  # its database ping may wait its own timeout

    # -- the feed, seen from outside -----------------------------------------------------------------

    def metrics(self, name: str) -> dict[str, float]:
        return feed_metrics(self.urls[name])

    def has_applied(self, name: str, seq: int) -> bool:
        """Whether ``name`` has applied every change up to ``seq``: its position is past it and no hole is
        outstanding (a position past ``seq`` alone may leave ``seq`` itself as a hole, committed late)."""
        feed = self.metrics(name)
        return feed["tokenward_changes_position"] >= seq and feed["tokenward_changes_holes"] == 0

    def seq_of(self, key: str) -> int:
        """The newest change-log seq for ``key`` (an app token's id): its revocation, once revoked."""
        with self.engine.connect() as conn:
            found = conn.execute(select(func.max(ChangeLogRow.seq)).where(ChangeLogRow.key == key)).scalar_one()
        assert found is not None, f"no change logged for {key}"
        return int(found)

    def head(self) -> int:
        return log_head(self.engine)

    # -- app tokens ----------------------------------------------------------------------------------

    def create_token(self, client: httpx.Client, name: str = "a") -> tuple[str, str]:
        """A new app token of :data:`OWNER` created on ``name``: (id, token)."""
        r = client.post(self.urls[name] + "/api/app-tokens", json={"label": "feed"}, auth=self.manage)
        assert r.status_code == 201, r.text
        return r.json()["id"], r.json()["token"]

    def revoke(self, client: httpx.Client, token_id: str, name: str = "a") -> None:
        r = client.delete(f"{self.urls[name]}/api/app-tokens/{token_id}", auth=self.manage)
        assert r.status_code in (200, 204), r.text

    def verify(self, client: httpx.Client, name: str, token: str) -> httpx.Response:
        basic = base64.b64encode(f"{OWNER}:{token}".encode()).decode()
        return client.get(self.urls[name] + self.verify_path, headers={**FORWARDED, "Authorization": f"Basic {basic}"})


def error_of(r: httpx.Response) -> object:
    try:
        body = r.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


@contextmanager
def database_behind_proxy(cluster: FeedCluster, name: str) -> Iterator[TcpProxy]:
    """Instance ``name`` (not started yet) reaches the database through a TCP proxy the test can cut or silence,
    and goes stale after 1 s without a read (``TOKENWARD_CHANGES_MAX_LAG_SECONDS``)."""
    db = make_url(cluster.database_url)
    with tcp_proxy(db.host or "127.0.0.1", db.port or 5432) as proxy:
        through_proxy = db.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        cluster.overrides[name] = {"TOKENWARD_DATABASE_URL": through_proxy, "TOKENWARD_CHANGES_MAX_LAG_SECONDS": "1"}
        yield proxy


@contextmanager
def feed_cluster(tmp: Path, backend: str, **env: str) -> Iterator[FeedCluster]:
    """A data dir ``a`` (copied to any other instance on first use) on a fresh ``backend`` database, a manager
    app token and an ``app_token`` config token; every instance started is stopped on exit."""
    server = f"feed-{secrets.token_hex(4)}.example.com"  # Redis keys and channels of this test alone
    with fresh_database_url(backend, tmp) as database_url:
        engine = sync_engine(database_url)
        shared = {
            "TOKENWARD_SERVER_NAME": server,
            "TOKENWARD_DATABASE_URL": database_url,
            "TOKENWARD_LOG_LEVEL": "INFO",
            **env,
        }
        cluster = FeedCluster(tmp, server, database_url, shared, engine)
        try:
            cluster.cli("init", "--server-name", server)
            manager = cluster.cli("app-token", "create", "-u", OWNER, "-s", "tokenward:manage").strip()
            cluster.manage = (OWNER, manager)
            config = json.dumps({"tokenward": {"plugins": [{"type": "app_token"}]}})
            cluster.verify_path = (
                "/verify?config_token=" + cluster.cli("config-token", "create", "-", stdin=config).split()[0]
            )
            yield cluster
        finally:
            for name in list(cluster.procs):
                cluster.stop(name)
            engine.dispose()
