"""`tokenward serve` as a real process on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import env_for, free_port, process_log, serving, tokenward
from tests.helpers import init_data_dir


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    data = tmp_path / "data"
    init_data_dir(data, "auth.example.com")
    with serving(env_for(data, TOKENWARD_LOG_FORMAT="json"), "--workers", "2") as running:
        yield running


def test_serve_answers_resourceinfo_with_workers(served: tuple[str, subprocess.Popen[str]]) -> None:
    url, proc = served
    r = httpx.get(url + "/api/resourceinfo", headers={"x-request-id": "e2e-1"})
    assert r.status_code == 200 and r.text == "auth.example.com"
    assert r.headers["x-request-id"] == "e2e-1"
    assert "server" not in r.headers
    assert httpx.get(url + "/readyz").json()["status"] == "ready"
    proc.terminate()
    proc.wait(timeout=15)
    lines = [json.loads(line) for line in process_log(proc).splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "tokenward.access" and line.get("request_id") == "e2e-1"]
    assert access and access[0]["path"] == "/api/resourceinfo" and access[0]["status"] == 200


def test_client_ip_is_the_peer_unless_trusted_proxies_say_otherwise(tmp_path: Path) -> None:
    # uvicorn's own proxy-header handling is off: X-Forwarded-For from a loopback peer is not believed
    # unless TOKENWARD_TRUSTED_PROXIES names that peer (docs/configuration.md).
    data = tmp_path / "data"
    init_data_dir(data, "auth.example.com")
    bad = {"Authorization": "Basic " + base64.b64encode(b"alice@example.com:twa_wrong").decode()}
    for trusted, expected in (("", "127.0.0.1"), ("127.0.0.1", "203.0.113.9")):
        env = env_for(data, TOKENWARD_TRUSTED_PROXIES=trusted)
        with serving(env) as (url, _):
            r = httpx.get(url + "/api/app-tokens", headers={**bad, "X-Forwarded-For": "203.0.113.9"})
            assert r.status_code == 401
        listed = tokenward("audit", "--json", "--action", "apptoken.verify_failed", "-n", "1", env=env)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout.splitlines()[0])["detail"]["ip"] == expected


def test_serve_refuses_unreachable_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data)
    # tokenward() gives up after 120 s: a hang fails the test, a slow machine does not.
    result = tokenward(
        "serve",
        "--port",
        str(free_port()),
        env=env_for(data, TOKENWARD_DATABASE_URL="postgresql://postgres:hunter2@127.0.0.1:9/none"),
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("error: ") and "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr


def test_serve_refuses_insecure_timecode_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data).timecode_file.chmod(0o640)
    result = tokenward("serve", "--port", str(free_port()), env=env_for(data))
    assert result.returncode == 1
    assert f"chmod 600 {data / 'timecode.json'}" in result.stderr


def test_serve_refuses_uninitialized_data_dir(tmp_path: Path) -> None:
    result = tokenward("serve", env=env_for(tmp_path / "empty"))
    assert result.returncode == 1 and "tokenward init" in result.stderr


def test_serve_refuses_bad_setting(tmp_path: Path) -> None:
    result = tokenward("serve", env=env_for(tmp_path, TOKENWARD_PORT="99999"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: invalid setting TOKENWARD_PORT: Input should be less than or equal to 65535"
    ]


def test_a_rotated_time_code_reaches_the_running_workers_without_a_restart(tmp_path: Path) -> None:
    """Issue 15 #12: `timecode rotate` printed "Succeeded" while the running server kept the old key."""
    data = tmp_path / "data"
    init_data_dir(data, "auth.example.com")
    env = env_for(data, TOKENWARD_POLICY_WATCH_SECONDS="0.5")
    with serving(env, "--workers", "2") as (url, _):
        old = httpx.get(url + "/readyz").json()["timecode"]
        rotated = tokenward("timecode", "rotate", env=env)
        assert rotated.returncode == 0 and "Succeeded" in rotated.stdout, rotated.stderr
        assert "puts it in force within 0.5 s" in rotated.stdout
        new = rotated.stdout.split("Key id:")[1].split()[0]
        assert new != old
        # Readiness-style wait (generous deadline, not a timing assertion): every answer, whichever worker
        # gives it, must show the new key id; the documented bound is one watch interval.
        seen: set[str] = set()
        end = time.monotonic() + 60
        while time.monotonic() < end:
            seen = {httpx.get(url + "/readyz").json()["timecode"] for _ in range(8)}
            if seen == {new}:
                break
            time.sleep(0.2)
        assert seen == {new}
