"""docs/deployment.md's backup and restore, done as written: the SQL database with its own tool, the data dir
as files; restored into a fresh database and a fresh folder, app tokens and sessions issued before the backup
still verify, and what was revoked before it stays refused.

PostgreSQL and MariaDB need their servers (skipped outside CI when missing, failed under ``CI=true``) and
their client tools (pg_dump/pg_restore, mariadb-dump/mariadb).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tests.helpers import clear_tokenward_env, missing
from tests.storage.servers import backend_params, fresh_database_url
from tokenward.cli.client import ensure_first_party_client
from tokenward.cli.main import app as cli
from tokenward.errors import Unauthorized
from tokenward.identity.encoding import b64u_encode
from tokenward.identity.sessions import SessionService
from tokenward.runtime import Runtime, open_runtime
from tokenward.settings import Settings
from tokenward.storage import SqlAuditLog, SqlIdentityStore

SERVER = "auth.example.com"
TOOLS = {"postgresql": ("pg_dump", "pg_restore"), "mariadb": ("mariadb-dump", "mariadb")}


@dataclass
class Issued:
    kept_token: str
    revoked_token: str
    kept_session: str
    ended_session: str


def require_tools(backend: str) -> None:
    absent = [tool for tool in TOOLS.get(backend, ()) if shutil.which(tool) is None]
    if absent:
        package = "postgresql-client" if backend == "postgresql" else "mariadb-client"
        missing(f"{', '.join(absent)} not installed: apt-get install {package}")


def session_service(runtime: Runtime) -> SessionService:
    return SessionService(
        keyring=lambda: runtime.keyring, store=SqlIdentityStore(runtime.database), audit=SqlAuditLog(runtime.database)
    )


async def issue(settings: Settings, client_id: str) -> Issued:
    runtime = await open_runtime(settings, listen=False)
    try:
        _, kept = await runtime.app_tokens.create(owner="alice@example.com", created_by="cli", label="kept")
        gone, revoked = await runtime.app_tokens.create(owner="alice@example.com", created_by="cli", label="gone")
        await runtime.app_tokens.revoke(gone.id, owner=None, actor="cli")
        identity = session_service(runtime)
        sessions = []
        for _ in range(2):
            # What a captcha or machine login ends with: a session row and its sealed source identifier.
            issued = await identity.issue(
                kind="user",
                subject="alice@example.com",
                client_id=client_id,
                app_hash="",
                scopes=(),
                session_key=b64u_encode(secrets.token_bytes(32)),
                now=time.time(),
            )
            sessions.append(issued)
        await identity.logout(sessions[1].identity, now=time.time())
        return Issued(kept, revoked, sessions[0].source_identifier, sessions[1].source_identifier)
    finally:
        await runtime.close()


def dump(backend: str, url: str, to: Path) -> None:
    if backend == "sqlite":
        # The online backup API, as `sqlite3 tokenward.db ".backup FILE"` (a plain copy of a live file is unsafe).
        with sqlite3.connect(make_url(url).database or "") as source, sqlite3.connect(to) as target:
            source.backup(target)
        return
    if backend == "postgresql":
        command = ["pg_dump", "-Fc", "-f", str(to), url]
    else:
        parts = make_url(url)
        command = ["mariadb-dump", *_mariadb_args(url), "--single-transaction", "--result-file", str(to)]
        command.append(parts.database or "")
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def restore(backend: str, dump_file: Path, url: str, data: Path) -> str:
    if backend == "sqlite":
        shutil.copy(dump_file, data / "tokenward.db")
        return f"sqlite:///{data / 'tokenward.db'}"
    if backend == "postgresql":
        command = ["pg_restore", "--no-owner", "--exit-on-error", "-d", url, str(dump_file)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    else:
        with dump_file.open("rb") as sql:
            command = ["mariadb", *_mariadb_args(url), make_url(url).database or ""]
            subprocess.run(command, check=True, stdin=sql, capture_output=True, timeout=120)
    return url


def _mariadb_args(url: str) -> list[str]:
    parts = make_url(url)
    args = ["-h", parts.host or "127.0.0.1", "-P", str(parts.port or 3306), "-u", parts.username or "root"]
    return [*args, f"-p{parts.password}"] if parts.password else args


async def assert_still_valid(settings: Settings, issued: Issued) -> None:
    runtime = await open_runtime(settings, listen=False)
    try:
        verified = await runtime.app_tokens.verify("alice@example.com", issued.kept_token)
        assert (await runtime.app_tokens.get(verified.id, owner="alice@example.com")).label == "kept"
        with pytest.raises(Unauthorized) as refused:
            await runtime.app_tokens.verify("alice@example.com", issued.revoked_token)
        assert refused.value.error_code == "apptoken_revoked"
        identity = session_service(runtime)
        session = await identity.authenticate(issued.kept_session, now=time.time())
        assert session.subject == "alice@example.com"
        with pytest.raises(Unauthorized) as ended:
            await identity.authenticate(issued.ended_session, now=time.time())
        assert ended.value.error_code == "session_revoked"
    finally:
        await runtime.close()


async def assert_refused_without_the_data_dir(settings: Settings, issued: Issued) -> None:
    # The database alone is not a backup: its app-token hashes are keyed by apptoken.key and its
    # sessions' identifiers are sealed under the time code, both in the data dir.
    runtime = await open_runtime(settings, listen=False)
    try:
        with pytest.raises(Unauthorized):
            await runtime.app_tokens.verify("alice@example.com", issued.kept_token)
        with pytest.raises(Unauthorized):
            await session_service(runtime).authenticate(issued.kept_session, now=time.time())
    finally:
        await runtime.close()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    clear_tokenward_env(monkeypatch)
    yield


@pytest.mark.parametrize("backend", backend_params())
async def test_backup_then_restore_into_a_fresh_database(backend: str, tmp_path: Path, env: None) -> None:
    require_tools(backend)
    runner = CliRunner()
    with ExitStack() as stack:
        (tmp_path / "old").mkdir()
        (tmp_path / "new").mkdir()
        url = stack.enter_context(fresh_database_url(backend, tmp_path / "old"))
        data = tmp_path / "old" / "data"
        init = runner.invoke(cli, ["--data-dir", str(data), "init", "--server-name", SERVER])
        assert init.exit_code == 0, init.output
        settings = Settings.load(data_dir=data, database_url=url)
        issued = await issue(settings, ensure_first_party_client(data, SERVER).client_id)

        # Back up: the database with its own tool, the data dir as files (without a live SQLite file).
        backup = tmp_path / "backup"
        backup.mkdir()
        dump(backend, url, backup / "database")
        shutil.copytree(data, backup / "data", ignore=shutil.ignore_patterns("tokenward.db*"))
        shutil.rmtree(data)  # the host is gone

        # Restore: a fresh database, the data dir back in a new place, `db upgrade`, serve.
        new_url = stack.enter_context(fresh_database_url(backend, tmp_path / "new"))
        restored = tmp_path / "new" / "data"
        shutil.copytree(backup / "data", restored)
        restored.chmod(0o700)
        new_url = restore(backend, backup / "database", new_url, restored)
        # The console script, as an operator runs it (the CLI runs its own event loop).
        command = [str(Path(sys.executable).parent / "tokenward"), "--data-dir", str(restored), "db", "upgrade"]
        upgrade = subprocess.run(
            [*command, "--database-url", new_url], capture_output=True, text=True, timeout=120, env=os.environ.copy()
        )
        assert upgrade.returncode == 0, upgrade.stderr
        await assert_still_valid(Settings.load(data_dir=restored, database_url=new_url), issued)

        # The same database with a new data dir (new apptoken.key, new time code) verifies nothing.
        other = tmp_path / "new" / "other"
        assert runner.invoke(cli, ["--data-dir", str(other), "init", "--server-name", SERVER]).exit_code == 0
        await assert_refused_without_the_data_dir(Settings.load(data_dir=other, database_url=new_url), issued)
