"""Two in-process instances with different time codes: a clear ``timecode_mismatch``, then the fix works.

Instance B shares A's database and policies but was set up with its own time code (an instance
whose time code was never synchronised). What A made, B refuses with ``timecode_mismatch`` and a
sentence naming the commands to fix it; a tampered identifier keeps its own code. After
``tokenward timecode show --reveal`` on A and ``tokenward timecode set -`` on B, B accepts it.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from typer.testing import CliRunner

from tests.helpers import init_data_dir
from tests.identity.helpers import SERVER, Instance, ask_captcha, captcha_login, enrol_user, prepare_data_dir
from tokenward.cli.main import app as cli
from tokenward.datadir import DataDir
from tokenward.identity.captcha import open_captcha
from tokenward.identity.client_tokens import b64u_of_public
from tokenward.runtime import Runtime, open_runtime
from tokenward.settings import Settings
from tokenward.web.app import create_app


class Pair:
    def __init__(
        self, a: Instance, b: Instance, client_id: str, data_a: Path, data_b: Path, runtime_b: Runtime
    ) -> None:
        self.a, self.b, self.client_id, self.data_a, self.data_b = a, b, client_id, data_a, data_b
        self.runtime_b = runtime_b


@pytest.fixture
async def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pair]:
    data_a, data_b = tmp_path / "a", tmp_path / "b"
    client_id = prepare_data_dir(data_a, monkeypatch)
    init_data_dir(data_b, SERVER)  # its own, unsynchronised time code
    for name in ("clientids.json", *(p.name for p in data_a.glob("*.csv"))):
        shutil.copy2(data_a / name, data_b / name)
    settings_a = Settings.load(data_dir=data_a)
    settings_b = Settings.load(data_dir=data_b, database_url=settings_a.database_url_or_default)
    runtimes: list[Runtime] = [await open_runtime(settings_a), await open_runtime(settings_b)]
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(s, runtime=rt)), base_url=f"http://{n}")
        for s, rt, n in ((settings_a, runtimes[0], "a"), (settings_b, runtimes[1], "b"))
    ]
    try:
        yield Pair(Instance(clients[0]), Instance(clients[1]), client_id, data_a, data_b, runtimes[1])
    finally:
        for client in clients:
            await client.aclose()
        for rt in runtimes:
            await rt.close()


async def test_foreign_time_code_is_named_not_called_tampered(pair: Pair) -> None:
    a, b = pair.a, pair.b
    alice = await enrol_user(a, pair.data_a, "alice@example.com")
    alice_si, _ = await captcha_login(a, a, pair.client_id, "alice@example.com", alice)

    r = await b.post("/api/client-token", {"destination": "api.example.com"}, token=alice_si)
    assert r.status_code == 401 and r.json()["error"] == "timecode_mismatch"
    detail = r.json()["detail"]
    assert "tokenward timecode show" in detail and "tokenward timecode set -" in detail
    assert alice_si.split(".")[1] in detail  # names the foreign key id (public, it is in the token)

    # A tampered identifier is still called tampered, on the instance that holds its time code.
    tampered = alice_si[:-4] + ("AAAA" if not alice_si.endswith("AAAA") else "BBBB")
    r = await a.post("/api/client-token", {"destination": "api.example.com"}, token=tampered)
    assert r.json()["error"] == "source_identifier_tampered"

    # A captcha issued by A and answered on B (shared database): a mismatch, and it costs no attempt.
    verifier = secrets.token_urlsafe(48)
    r = await ask_captcha(a, pair.client_id, "alice@example.com", verifier)
    assert r.status_code == 200, r.text
    code = open_captcha(r.json()["captcha"], alice).code
    answer = {
        "captcha_id": r.json()["captcha_id"],
        "code": code,
        "code_verifier": verifier,
        "session_key": b64u_of_public(X25519PrivateKey.generate()),
    }
    for _ in range(6):
        r = await b.post("/api/captcha/verify", answer)
        assert r.status_code == 401 and r.json()["error"] == "timecode_mismatch"
    r = await a.post("/api/captcha/verify", answer)
    assert r.status_code == 200, r.text

    # The operator follows the sentence: show the code on A, set it on B. B now accepts A's session.
    shown = await asyncio.to_thread(CliRunner().invoke, cli, ["-d", str(pair.data_a), "timecode", "show", "--reveal"])
    assert shown.exit_code == 0, shown.output
    code_line = next(line for line in shown.stdout.splitlines() if line.startswith("Time code:"))
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["-d", str(pair.data_b), "timecode", "set", "-"], input=code_line.split()[-1] + "\n"
    )
    assert result.exit_code == 0, result.output
    pair.runtime_b.use_timecodes(DataDir(pair.data_b).read_timecodes())  # what a restart (or config sync) does
    r = await b.post("/api/client-token", {"destination": "api.example.com"}, token=alice_si)
    assert r.status_code == 404 and r.json()["error"] == "destination_unknown"  # accepted; no peer session yet
