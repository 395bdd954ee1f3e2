"""The user flows the identity tests share: a prepared data dir, enrolment, a captcha login and a
resource login, driven over HTTP against an app (two instances when a test needs them)."""

from __future__ import annotations

import hashlib
import io
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
import zxingcpp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import clear_tokenward_env, enrollment_code, init_data_dir, resource_login_body, write_policy_files
from tokenward.cli.main import app as cli
from tokenward.identity.captcha import open_captcha, pkce_challenge
from tokenward.identity.client_tokens import b64u_of_public
from tokenward.identity.encoding import b64u_encode
from tokenward.runtime import Runtime

__all__ = [
    "ORIGIN",
    "SERVER",
    "Instance",
    "ask_captcha",
    "captcha_login",
    "enrol_user",
    "key_fingerprint",
    "prepare_data_dir",
    "resource_login",
    "write_policies",
]

SERVER = "auth.example.com"
ORIGIN = "https://app.example.com:8443"


def prepare_data_dir(data: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A data dir for SERVER with one client app (ORIGIN) and the test policies, in an environment
    without TOKENWARD_* variables; returns the client id."""
    clear_tokenward_env(monkeypatch)
    init_data_dir(data, SERVER)
    result = CliRunner().invoke(cli, ["-d", str(data), "client", "register", "--name", "App", "--origin", ORIGIN])
    assert result.exit_code == 0, result.output
    client_id = result.stdout.split("client_id:")[1].split()[0]
    write_policies(data, client_id)
    return client_id


def write_policies(data: Path, client_id: str) -> None:
    files = {
        "captchapolicy.csv": (
            f"p, *@example.com, {SERVER}, CAPTCHA, enable\np, mallory@example.com, {SERVER}, CAPTCHA, deny\n"
        ),
        "userpolicy.csv": (
            f"p, *@example.com, {SERVER}, {client_id}, login\n"
            f"p, *@example.com, api.example.com, {client_id}, ask\n"
            f"p, *@example.com, *@example.com, {client_id}, poke\n"
            f"p, carol@example.com, api.example.com, {client_id}, deny\n"
        ),
        "resourcepolicy.csv": f"p, api.example.com, {SERVER}, {client_id}, login\n",
        "clientscopespolicy.csv": f"p, *@example.com, *, {client_id}, DEFAULT\n",
    }
    write_policy_files(data, files)


class Instance:
    """One server instance as a test drives it: its HTTP client and, when the test built it, its runtime."""

    def __init__(self, client: httpx.AsyncClient, runtime: Runtime | None = None) -> None:
        self.http = client
        self.runtime = runtime

    async def post(self, path: str, body: dict[str, Any], token: str | None = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await self.http.post(path, json=body, headers=headers)


async def enrol_user(a: Instance, data_dir: Path, email: str) -> X25519PrivateKey:
    code = await enrollment_code(data_dir, email)
    key = X25519PrivateKey.generate()
    r = await a.post("/api/enroll", {"email": email, "code": code, "public_key": b64u_encode(bytes(32))})
    assert r.status_code == 400 and r.json()["error"] == "public_key_weak"  # and the code is not spent
    r = await a.post("/api/enroll", {"email": email, "code": code, "public_key": b64u_of_public(key)})
    assert r.status_code == 200, r.text
    assert r.json() == {"email": email, "status": "enrolled", "fingerprint": key_fingerprint(key)}
    r = await a.post("/api/enroll", {"email": email, "code": code, "public_key": b64u_of_public(key)})
    assert r.json()["error"] == "enrollment_code_invalid"
    return key


def key_fingerprint(key: X25519PrivateKey) -> str:
    return hashlib.sha256(key.public_key().public_bytes_raw()).hexdigest()[:32]


async def ask_captcha(a: Instance, client_id: str, email: str, verifier: str) -> httpx.Response:
    body = {"email": email, "client_id": client_id, "origin": ORIGIN, "code_challenge": pkce_challenge(verifier)}
    return await a.post("/api/captcha", body)


async def captcha_login(
    a: Instance, b: Instance, client_id: str, email: str, authenticator: X25519PrivateKey
) -> tuple[str, X25519PrivateKey]:
    verifier = secrets.token_urlsafe(48)
    r = await ask_captcha(a, client_id, email, verifier)
    assert r.status_code == 200, r.text
    png = await a.http.get("/api/captcha/qr.png", params={"captcha": r.json()["captcha"]})
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    plain = open_captcha(decoded[0].text, authenticator)
    assert plain.origin == ORIGIN and plain.server == SERVER and plain.subject == email
    session = X25519PrivateKey.generate()
    body = {
        "captcha_id": r.json()["captcha_id"],
        "code": plain.code.lower(),
        "code_verifier": verifier,
        "session_key": b64u_of_public(session),
    }
    r = await b.post("/api/captcha/verify", body)
    assert r.status_code == 200, r.text
    assert r.json()["scopes"] == ["DEFAULT"]
    reuse = await a.post("/api/captcha/verify", body)
    assert reuse.status_code == 409 and reuse.json()["error"] == "captcha_used"
    return str(r.json()["source_identifier"]), session


async def resource_login(b: Instance, data_dir: Path, client_id: str) -> tuple[str, X25519PrivateKey]:
    signing = Ed25519PrivateKey.generate()
    pem = signing.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (data_dir.parent / "api.pem").write_bytes(pem)
    result = CliRunner().invoke(
        cli,
        [
            "-d",
            str(data_dir),
            "resource",
            "register",
            "api.example.com",
            "--public-key",
            str(data_dir.parent / "api.pem"),
        ],
    )
    assert result.exit_code == 0, result.output
    r = await b.post("/api/resource/challenge", {"resource": "api.example.com", "client_id": client_id})
    assert r.status_code == 200, r.text
    ch = r.json()
    session = X25519PrivateKey.generate()
    body = resource_login_body(ch, signing, client_id=client_id, session_key=b64u_of_public(session), server=SERVER)
    r = await b.post("/api/resource/login", body)
    assert r.status_code == 200, r.text
    again = await b.post("/api/resource/login", body)
    assert again.json()["error"] == "challenge_used"
    return str(r.json()["source_identifier"]), session
