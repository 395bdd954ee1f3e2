"""Split authorization in practice (docs/policies.md): one bucket, one database, different segments.

The admin data dir saves one bundle to a moto S3 bucket; instance U starts with
``TOKENWARD_POLICY_SEGMENTS=user,captcha`` and instance R with ``resource,system``, each from an
empty data dir that the bundle fills (time code, app-token key, client IDs). Each enforces only
its files — a question for a segment it does not serve answers ``policy_segment_not_served``
naming the segment — and each accepts the source identifiers the other issued.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from typer.testing import CliRunner

from tests.helpers import resource_login_body
from tests.identity.helpers import ORIGIN, SERVER, Instance, captcha_login, enrol_user, write_policies
from tokenward.cli.main import app as cli
from tokenward.configsync import ConfigKey
from tokenward.identity.client_tokens import b64u_of_public
from tokenward.runtime import Runtime, open_runtime
from tokenward.settings import Settings
from tokenward.storage.blobs import S3Config
from tokenward.web.app import create_app


@dataclass
class Split:
    admin: Path
    client_id: str
    user: Instance
    resource: Instance
    api_key: Ed25519PrivateKey


async def _invoke(*args: str) -> str:
    # The CLI runs its own event loop: give it a thread.
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
async def split(tmp_path: Path, s3_config: S3Config, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Split]:
    for key in list(os.environ):
        if key.startswith(("TOKENWARD_", "HEXAEIGHT_")):
            monkeypatch.delenv(key)
    shared = {
        "TOKENWARD_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
        "TOKENWARD_S3_URL": str(s3_config.url),
        "TOKENWARD_S3_BUCKET": s3_config.bucket,
        "TOKENWARD_S3_ACCESS_KEY": str(s3_config.access_key),
        "TOKENWARD_S3_SECRET_KEY": str(s3_config.secret_key),
        "TOKENWARD_CONFIG_KEY": ConfigKey.generate(),
    }
    for key, value in shared.items():
        monkeypatch.setenv(key, value)
    admin = tmp_path / "admin"
    await _invoke("-d", str(admin), "init", "--server-name", SERVER, "--admin", "root@example.com")
    out = await _invoke("-d", str(admin), "client", "register", "--name", "App", "--origin", ORIGIN)
    client_id = out.split("client_id:")[1].split()[0]
    write_policies(admin, client_id)
    with (admin / "resourcepolicy.csv").open("a") as f:
        f.write(f"p, api.example.com, *@example.com, {client_id}, ask\n")
    # the resource server's key is registered once, on the admin machine, and reaches R through the bundle
    api_key = Ed25519PrivateKey.generate()
    pem = api_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "api.pem").write_bytes(pem)
    await _invoke(
        "-d", str(admin), "resource", "register", "api.example.com", "--public-key", str(tmp_path / "api.pem")
    )
    saved = await _invoke("-d", str(admin), "config", "save")
    assert "- Time Code Saved Successfully. (sealed)" in saved
    assert "- Resource Server Configuration Saved Successfully." in saved

    runtimes: list[Runtime] = []
    clients: list[httpx.AsyncClient] = []
    for name, segments in (("u", "user,captcha"), ("r", "resource,system")):
        data = tmp_path / name
        data.mkdir(mode=0o700)
        (data / "server-name").write_text(SERVER + "\n")
        settings = Settings.load(data_dir=data, policy_segments=segments, max_body_bytes=4096)
        runtime = await open_runtime(settings)
        runtimes.append(runtime)
        transport = httpx.ASGITransport(app=create_app(settings, runtime=runtime))
        clients.append(httpx.AsyncClient(transport=transport, base_url=f"http://{name}"))
    try:
        yield Split(admin, client_id, Instance(clients[0], runtimes[0]), Instance(clients[1], runtimes[1]), api_key)
    finally:
        for client in clients:
            await client.aclose()
        for runtime in runtimes:
            await runtime.close()


async def _resource_login(r: Instance, client_id: str, signing: Ed25519PrivateKey) -> httpx.Response:
    ch = (await r.post("/api/resource/challenge", {"resource": "api.example.com", "client_id": client_id})).json()
    session = b64u_of_public(X25519PrivateKey.generate())
    body = resource_login_body(ch, signing, client_id=client_id, session_key=session, server=SERVER)
    return await r.post("/api/resource/login", body)


def _not_served(response: httpx.Response, segment: str) -> None:
    body = response.json()
    assert response.status_code == 400, response.text
    assert body["error"] == "policy_segment_not_served", body
    assert f"the {segment} policy segment" in body["detail"], body


async def test_each_instance_enforces_its_segments_and_accepts_the_others_identifiers(split: Split) -> None:
    u, r, client_id = split.user, split.resource, split.client_id
    for instance, served in ((u, ["captcha", "user"]), (r, ["resource", "system"])):
        ready = (await instance.http.get("/readyz")).json()
        assert ready["config_sync"]["source"] == "s3", ready
        assert sorted(ready["policy"]["segments"]) == served, ready["policy"]

    # user logins (captcha and user segments) on U; resource machine logins on R
    alice_key = await enrol_user(u, split.admin, "alice@example.com")
    alice, _ = await captcha_login(u, u, client_id, "alice@example.com", alice_key)
    login = await _resource_login(r, client_id, split.api_key)
    assert login.status_code == 200, login.text
    api = str(login.json()["source_identifier"])

    # each refuses the other's questions, naming the segment — never a silent deny
    captcha = {"email": "alice@example.com", "client_id": client_id, "origin": ORIGIN, "code_challenge": "x" * 43}
    _not_served(await r.post("/api/captcha", captcha), "captcha")
    _not_served(await _resource_login(u, client_id, split.api_key), "resource")

    # each accepts the other's source identifiers: authentication passes, the question is the other segment's
    destination = {"destination": "api.example.com"}
    assert (await u.post("/api/client-token", destination, token=alice)).status_code == 200
    _not_served(await r.post("/api/client-token", destination, token=alice), "user")
    to_alice = {"destination": "alice@example.com"}
    assert (await r.post("/api/client-token", to_alice, token=api)).status_code == 200
    _not_served(await u.post("/api/client-token", to_alice, token=api), "resource")

    # a session ended on R is refused by U (one database) once U's change feed reads the log (0.2 s in the
    # background; read here without waiting for it)
    assert (await r.http.delete("/api/session", headers={"authorization": f"Bearer {alice}"})).status_code == 204
    assert u.runtime is not None
    await u.runtime.changes.poll()
    refused = await u.post("/api/client-token", destination, token=alice)
    assert refused.status_code == 401, refused.text
