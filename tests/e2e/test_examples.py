"""examples/client_app.py and examples/resource_server.py against a real `tokenward serve`.

tokenward serves on a free port; the resource server runs under uvicorn (its own process) and
logs in as a resource at start; the client app logs a user in with the captcha (answered by the
enrolled authenticator key) and calls the resource server with sealed requests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.e2e.processes import env_for, free_port, serving, start_process, stop, tokenward, wait_ready
from tests.helpers import enrollment_code_in, write_policy_files
from tokenward.identity.client_tokens import b64u_of_public
from tokenward.identity.encoding import b64u_encode

ROOT = Path(__file__).resolve().parents[2]
SERVER = "auth.example.com"
API = "api.example.com"
ORIGIN = "https://app.example.com"


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str, Path]]:
    """(tokenward URL, client ID, resource server URL, authenticator key file)."""
    tmp = tmp_path_factory.mktemp("examples")
    data = tmp / "data"
    env = env_for(data)
    _ok(tokenward("init", "--server-name", SERVER, env=env))
    client_id = _ok(tokenward("client", "register", "--name", "Notes", "--origin", ORIGIN, env=env))
    client_id = client_id.split("client_id:")[1].split()[0]
    signing = Ed25519PrivateKey.generate()
    (tmp / "api.pem").write_bytes(
        signing.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (tmp / "api.pub.pem").write_bytes(
        signing.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    _ok(tokenward("resource", "register", API, "--public-key", str(tmp / "api.pub.pem"), env=env))
    policies = {
        "captchapolicy.csv": f"p, *@example.com, {SERVER}, CAPTCHA, enable\n",
        "userpolicy.csv": (
            f"p, *@example.com, {SERVER}, {client_id}, login\np, *@example.com, {API}, {client_id}, ask\n"
        ),
        "resourcepolicy.csv": f"p, {API}, {SERVER}, {client_id}, login\n",
        "clientscopespolicy.csv": f"p, *@example.com, *, {client_id}, DEFAULT\n",
    }
    write_policy_files(data, policies)
    code = enrollment_code_in(_ok(tokenward("user", "enroll", "alice@example.com", env=env)))
    authenticator = X25519PrivateKey.generate()
    key_file = tmp / "authenticator.key"
    key_file.write_text(b64u_encode(authenticator.private_bytes_raw()))
    key_file.chmod(0o600)
    with serving(env) as (url, _):
        enrolled = httpx.post(
            url + "/api/enroll",
            json={"email": "alice@example.com", "code": code, "public_key": b64u_of_public(authenticator)},
            timeout=30,
        )
        assert enrolled.status_code == 200, enrolled.text
        port = free_port()
        rs_env = {
            **env_for(data),
            "RS_TOKENWARD_URL": url,
            "RS_CLIENT_ID": client_id,
            "RS_NAME": API,
            "RS_SIGNING_KEY": str(tmp / "api.pem"),
        }
        rs_env.pop("TOKENWARD_DATA_DIR")  # the resource server is not a tokenward instance
        proc = start_process(
            [sys.executable, "-m", "uvicorn", "examples.resource_server:create_app", "--factory", *_bind(port)],
            cwd=ROOT,
            env=rs_env,
        )
        try:
            wait_ready(proc, f"http://127.0.0.1:{port}")
            yield url, client_id, f"http://127.0.0.1:{port}", key_file
        finally:
            stop(proc)


def _bind(port: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port)]


def _client_app(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in env_for(Path("/nonexistent")).items() if k != "TOKENWARD_DATA_DIR"}
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "client_app.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_client_app_calls_the_resource_server(deployment: tuple[str, str, str, Path]) -> None:
    url, client_id, api, key_file = deployment
    done = _client_app(url, client_id, api, API, "alice@example.com", ORIGIN, str(key_file))
    assert done.returncode == 0, done.stderr
    assert "logged in as alice@example.com" in done.stderr
    out = json.loads(done.stdout)
    assert out["notes"] == [
        200,
        {
            "saved": {"text": "hello from the client app"},
            "by": "alice@example.com",
            "scopes": ["DEFAULT"],
            "sealed": True,
        },
    ]
    assert out["admin"][0] == 403 and out["admin"][1]["error"] == "scope_missing"


def test_the_resource_server_refuses_requests_without_a_valid_token(deployment: tuple[str, str, str, Path]) -> None:
    _, _, api, _ = deployment
    r = httpx.post(api + "/notes", json={"text": "x"}, timeout=30)
    assert r.status_code == 401 and r.json()["error"] == "client_token_missing"
    r = httpx.post(api + "/notes", json={"text": "x"}, headers={"authorization": "Bearer a.b.c"}, timeout=30)
    assert r.status_code == 401 and r.json()["error"] == "client_token_invalid"


def test_the_client_app_reports_a_wrong_authenticator_key(
    deployment: tuple[str, str, str, Path], tmp_path: Path
) -> None:
    url, client_id, api, _ = deployment
    wrong = tmp_path / "wrong.key"
    wrong.write_text(b64u_encode(X25519PrivateKey.generate().private_bytes_raw()))
    done = _client_app(url, client_id, api, API, "alice@example.com", ORIGIN, str(wrong))
    assert done.returncode == 1
    assert "error:" in done.stderr and "captcha_unreadable" in done.stderr and "Traceback" not in done.stderr
