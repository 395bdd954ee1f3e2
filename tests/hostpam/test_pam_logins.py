"""Real PAM logins against a real ``tokenward serve``: pamtester, a PAM service file, unix users (root only).

Both ways (docs/system-login.md §2): the code typed at the password prompt (pam_exec.so
expose_authtok, the original's flow, code made with ``tokenward authenticator system-login``)
and the PAM conversation (pam_python.so: the captcha's text and QR shown, the code asked for, on
a pseudo-terminal). Right code → success; wrong, replayed, user outside the policy, unknown
user, server down (a listener that never answers, refused within the configured timeout) →
failure, each with its one auth-log line.

Needs root, pamtester, libpam-python and Debian's python3-cryptography (``apt-get install -y
pamtester libpam-python python3-cryptography python3-segno``): skipped otherwise, failed under CI=true.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import secrets
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.e2e.processes import env_for, serving
from tests.helpers import init_data_dir
from tokenward.cli.main import app as cli
from tokenward.hostpam.install import pam_python_path
from tokenward.identity.captcha import ALPHABET, open_captcha
from tokenward.identity.keyfile import open_key_file
from tokenward.keys import Secret

SERVER = "auth.example.com"
HOST = "pamhost.example.com"
PASS_ENV = "TW_PAM_TEST_PASSPHRASE"
PASSPHRASE = "correct horse battery staple"
SYSTEM_PYTHON = "/usr/bin/python3"
#: A hang guard, not a timing assertion: a login that fails closed returns long before this.
PAMTESTER_DEADLINE = 90.0


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (writes /etc/pam.d/tokenward-test-*, creates unix users)"
    if shutil.which("pamtester") is None:
        return "pamtester is missing: apt-get install -y pamtester"
    if not os.path.exists(pam_python_path()):
        return "pam_python.so is missing: apt-get install -y libpam-python"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import cryptography"], capture_output=True, check=False)
    if probe.returncode != 0:
        return "the system python3 lacks cryptography: apt-get install -y python3-cryptography"
    return None


@pytest.fixture(scope="module", autouse=True)
def _requirements() -> None:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PAM login tests under CI: {reason}")
        pytest.skip(reason)


@dataclass
class Setup:
    url: str
    data: Path
    env: dict[str, str]
    etc: Path
    lib: Path
    log: Path
    key_file: Path
    alice_unix: str
    alice: str
    bob_unix: str
    bob: str


def _run(*args: str, env: dict[str, str]) -> str:
    """A tokenward command, in process (a CLI subprocess costs seconds on a loaded machine)."""
    result = CliRunner().invoke(cli, ["-d", env["TOKENWARD_DATA_DIR"], *args], env={PASS_ENV: PASSPHRASE})
    assert result.exit_code == 0, result.output
    return result.stdout


def _useradd(name: str) -> None:
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with host_setup(tmp_path_factory.mktemp("pam")) as ready:
        yield ready


@contextlib.contextmanager
def host_setup(root: Path, **server_env: str) -> Iterator[Setup]:
    """A served data dir, a host set up with `tokenward host init|install`, two enrolled users with unix accounts."""
    data = root / "data"
    init_data_dir(data, SERVER)
    env = env_for(data, **{PASS_ENV: PASSPHRASE}, **server_env)
    client_id = _run("client", "register", "--name", "Hosts", env=env).split("client_id:")[1].split()[0]
    tag = secrets.token_hex(3)
    alice, bob = f"twa{tag}@example.com", f"twb{tag}@example.com"
    alice_unix, bob_unix = f"twa{tag}--example.com", f"twb{tag}"
    (data / "resourcepolicy.csv").write_text(
        f"p, {HOST}, {SERVER}, {client_id}, login\np, {alice}, {HOST}, {SERVER}, systemlogin\n"
    )
    etc, lib, log = root / "etc", root / "lib", root / "auth.log"
    with serving(env) as (url, _):
        _run(
            "host",
            "init",
            HOST,
            "--server",
            url,
            "--client-id",
            client_id,
            "--dir",
            str(etc),
            "--timeout",
            "5",
            env=env,
        )
        _run("resource", "register", HOST, "--public-key", str(etc / "host.pub"), env=env)
        _run("host", "install", "--lib-dir", str(lib), env=env)
        conf = etc / "pam.conf"
        text = conf.read_text().replace("log_file = \n", f"log_file = {log}\n")
        conf.write_text(re.sub(r"(?m)^session_cache = .*$", f"session_cache = {root / 'run' / 'session'}", text))
        (etc / "pam-users").write_text(f"{bob_unix} {bob}\n")
        assert _run("host", "check", "--config", str(conf), env=env).startswith(f"ok: {HOST} logged in")
        key_file = root / "authenticator.key"
        opts = ["--key-file", str(key_file), "--passphrase-env", PASS_ENV]
        _run("authenticator", "init", *opts, env=env)
        for email in (alice, bob):
            code = _run("user", "enroll", email, env=env).strip().splitlines()[-1].split()[-1]
            _run("authenticator", "enroll", url, email, "--code", code, *opts, env=env)
        _useradd(alice_unix)
        _useradd(bob_unix)
        try:
            yield Setup(url, data, env, etc, lib, log, key_file, alice_unix, alice, bob_unix, bob)
        finally:
            for name in (alice_unix, bob_unix):
                subprocess.run(["userdel", name], check=False)


@contextlib.contextmanager
def pam_service(lines: list[str]) -> Iterator[str]:
    """A PAM service file /etc/pam.d/tokenward-test-<random> with ``lines``; removed on exit."""
    name = f"tokenward-test-{secrets.token_hex(4)}"
    path = Path("/etc/pam.d") / name
    path.write_text("\n".join([*lines, "account required pam_permit.so", ""]))
    try:
        yield name
    finally:
        path.unlink(missing_ok=True)


def _auth_lines(setup: Setup, mode: str, config: Path | None = None) -> list[str]:
    out = _run("host", "pam-config", "--mode", mode, "--config", str(config or setup.etc / "pam.conf"),
               "--lib-dir", str(setup.lib), env=setup.env)  # fmt: skip
    return out.strip().splitlines()


def pamtester(service: str, user: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pamtester", service, user, "authenticate"],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=PAMTESTER_DEADLINE,
        check=False,
    )


def _last_log_line(setup: Setup) -> str:
    return setup.log.read_text().strip().splitlines()[-1]


def _user_code(setup: Setup, email: str) -> str:
    """The code the user's authenticator makes for HOST (the CLI the docs tell users to run)."""
    opts = ["--key-file", str(setup.key_file), "--passphrase-env", PASS_ENV, "--code-only"]
    return _run("authenticator", "system-login", setup.url, email, HOST, *opts, env=setup.env).strip()


def _wrong(code: str) -> str:
    return "".join(ALPHABET[(ALPHABET.index(c) + 1) % len(ALPHABET)] for c in code)


# -- (a) the code typed at the password prompt: pam_exec ---------------------------------------


def test_password_prompt_right_code_then_replay_and_wrong_code(setup: Setup) -> None:
    with pam_service(_auth_lines(setup, "exec")) as service:
        code = _user_code(setup, setup.alice)
        wrong = pamtester(service, setup.alice_unix, _wrong(code))
        assert wrong.returncode != 0, wrong.stdout
        assert "system_login_wrong_code" in _last_log_line(setup)
        ok = pamtester(service, setup.alice_unix, code)
        assert ok.returncode == 0, ok.stderr
        assert "successfully authenticated" in ok.stdout
        line = _last_log_line(setup)
        assert line.count("tokenward-pam: granted") == 1 and setup.alice in line and code not in line
        replay = pamtester(service, setup.alice_unix, code)
        assert replay.returncode != 0
        assert "system_login_no_captcha" in _last_log_line(setup)
        assert _session_cache(setup).stat().st_mode & 0o777 == 0o600


def _session_cache(setup: Setup) -> Path:
    return setup.etc.parent / "run" / "session"


def test_a_stale_cached_host_session_is_replaced(setup: Setup) -> None:
    # A session of another time code, or ended on the server: the host logs in again, once.
    _session_cache(setup).parent.mkdir(mode=0o700, exist_ok=True)
    _session_cache(setup).write_text("tw1si.k0000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    _session_cache(setup).chmod(0o600)
    with pam_service(_auth_lines(setup, "exec")) as service:
        code = _user_code(setup, setup.alice)
        ok = pamtester(service, setup.alice_unix, code)
        assert ok.returncode == 0, ok.stderr
    assert (
        _session_cache(setup).read_text().startswith("tw1si.")
        and "AAAAAAAAAAAA" not in _session_cache(setup).read_text()
    )


def test_password_prompt_user_outside_the_policy_is_refused(setup: Setup) -> None:
    with pam_service(_auth_lines(setup, "exec")) as service:
        result = pamtester(service, setup.bob_unix, "AAAAA")
        assert result.returncode != 0
        line = _last_log_line(setup)
        assert "refused" in line and setup.bob in line and "system_login_denied" in line


def test_password_prompt_unmapped_user_is_refused(setup: Setup) -> None:
    with pam_service(_auth_lines(setup, "exec")) as service:
        assert pamtester(service, "root", "AAAAA").returncode != 0
        assert "unknown-user unix user 'root'" in _last_log_line(setup)


@contextlib.contextmanager
def server_down(setup: Setup) -> Iterator[Path]:
    """A pam.conf whose server accepts connections and never answers (the hang a dead server causes)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        conf = setup.etc / "pam-down.conf"
        text = (setup.etc / "pam.conf").read_text()
        text = re.sub(r"(?m)^server = .*$", f"server = http://127.0.0.1:{port}", text)
        conf.write_text(
            re.sub(r"(?m)^session_cache = .*$", "session_cache = ", text).replace("timeout = 5", "timeout = 1.5")
        )
        yield conf


def test_server_down_is_refused_within_the_timeout(setup: Setup) -> None:
    with server_down(setup) as conf, pam_service(_auth_lines(setup, "exec", conf)) as service:
        result = pamtester(service, setup.alice_unix, "AAAAA")
    assert result.returncode != 0
    line = _last_log_line(setup)
    assert "unavailable" in line and "no answer within 1.5 s" in line, line


def test_pam_python_password_mode_takes_the_code_at_the_prompt(setup: Setup) -> None:
    with pam_service(_auth_lines(setup, "password")) as service:
        code = _user_code(setup, setup.alice)
        assert pamtester(service, setup.alice_unix, _wrong(code)).returncode != 0
        ok = pamtester(service, setup.alice_unix, code)
        assert ok.returncode == 0, ok.stderr
        assert "tokenward-pam: granted" in _last_log_line(setup)


# -- (b) the PAM conversation: pam_python, on a pseudo-terminal --------------------------------


def converse(service: str, user: str, answer: Callable[[str], str]) -> tuple[int, str]:
    """Run pamtester on a pty; when it asks ``Code:``, type ``answer(screen so far)``. (exit status, screen)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(["pamtester", service, user, "authenticate"], stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    screen = b""
    answered = False
    end = time.monotonic() + PAMTESTER_DEADLINE
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            screen += chunk
            if not answered and b"Code: " in screen:
                os.write(master, answer(screen.decode("utf-8", "replace")).encode() + b"\n")
                answered = True
        return proc.wait(timeout=PAMTESTER_DEADLINE), screen.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def _code_on_screen(setup: Setup, screen: str) -> str:
    found = re.search(r"TWC[12]\.[A-Za-z0-9_.-]+", screen)
    assert found, screen
    key = open_key_file(setup.key_file.read_bytes(), Secret(PASSPHRASE.encode()))
    plain = open_captcha(found.group(0), key)
    assert plain.origin == HOST and plain.subject == setup.alice
    return plain.code


def test_conversation_shows_the_captcha_and_accepts_its_code(setup: Setup) -> None:
    with pam_service(_auth_lines(setup, "conversation")) as service:
        codes: list[str] = []

        def answer(screen: str) -> str:
            codes.append(_code_on_screen(setup, screen))
            return codes[-1]

        status, screen = converse(service, setup.alice_unix, answer)
        assert status == 0, screen
        assert f"a captcha for {setup.alice} to log in to {HOST}" in screen
        if subprocess.run([SYSTEM_PYTHON, "-c", "import segno"], check=False).returncode == 0:
            assert "\u2580" in screen and "\u2584" in screen  # the QR code, in half blocks
        assert "successfully authenticated" in screen
        assert "tokenward-pam: granted" in _last_log_line(setup)

        # The previous login's code, typed into a new conversation (a new captcha): refused.
        status, screen = converse(service, setup.alice_unix, lambda _: codes[0])
        assert status != 0, screen
        assert "system_login_wrong_code" in _last_log_line(setup)


def test_conversation_wrong_and_empty_codes_are_refused(setup: Setup) -> None:
    with pam_service(_auth_lines(setup, "conversation")) as service:
        status, screen = converse(service, setup.alice_unix, lambda s: _wrong(_code_on_screen(setup, s)))
        assert status != 0, screen
        assert "system_login_wrong_code" in _last_log_line(setup)
        assert "tokenward: the code was not accepted." in screen and "system_login" not in screen
        status, screen = converse(service, setup.alice_unix, lambda _: "")
        assert status != 0, screen
        assert "no_code" in _last_log_line(setup)


def test_conversation_server_down_asks_nothing_and_refuses(setup: Setup) -> None:
    with server_down(setup) as conf, pam_service(_auth_lines(setup, "conversation", conf)) as service:
        status, screen = converse(service, setup.alice_unix, lambda _: "AAAAA")
    assert status != 0 and "Code: " not in screen
    assert "no answer within 1.5 s" in _last_log_line(setup)
    assert "tokenward: the token server could not be asked" in screen


def test_conversation_user_outside_the_policy_gets_no_captcha(setup: Setup) -> None:
    with pam_service(_auth_lines(setup, "conversation")) as service:
        status, screen = converse(service, setup.bob_unix, lambda _: "AAAAA")
        assert status != 0
        assert "Code: " not in screen and "TWC" not in screen
        assert "system_login_denied" in _last_log_line(setup)
        assert "the code was not accepted" in screen and "denied" not in screen  # no policy revealed


def test_server_answers_are_checked_over_http_too(setup: Setup) -> None:
    # The host's own session is what the PAM side uses: a user cannot call the host endpoints.
    r = httpx.post(setup.url + "/api/system-login/verify", json={"user": setup.alice, "code": "AAAAA"}, timeout=30)
    assert r.status_code == 401 and r.json()["error"] == "source_identifier_missing"
