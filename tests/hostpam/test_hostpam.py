"""The host side without root: its imports, configuration, user mapping, QR code, fail-closed outcomes, CLI.

The real PAM logins are in test_pam_logins.py (root only); these run everywhere.
"""

from __future__ import annotations

import ast
import io
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from typer.testing import CliRunner

import tokenward.hostpam
from tokenward.cli.main import app as cli
from tokenward.hostpam import pam_exec, pam_module
from tokenward.hostpam.client import SessionCache
from tokenward.hostpam.config import ConfigProblem, HostConfig, address_for, load_config, read_key, render_config
from tokenward.hostpam.flow import (
    GRANTED,
    REFUSED,
    UNAVAILABLE,
    UNKNOWN_USER,
    conversation_login,
    log_line,
    password_login,
)
from tokenward.hostpam.install import install, pam_lines
from tokenward.hostpam.qr import terminal_qr

PACKAGE = Path(tokenward.hostpam.__file__).parent
ALLOWED_ROOTS = {"cryptography", "segno"}


def test_the_login_path_imports_only_the_standard_library_cryptography_and_segno() -> None:
    """What PAM runs must work under Debian's python3 with Debian packages: no tokenward, pydantic, httpx…"""
    for module in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(module.read_text(), str(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                continue
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                root = name.split(".")[0]
                assert root in sys.stdlib_module_names or root in ALLOWED_ROOTS or root == "__future__", (
                    f"{module.name} imports {name}"
                )


def _config(tmp_path: Path, **changes: Any) -> HostConfig:
    """A configuration with a real 0600 Ed25519 host key."""
    key_file = tmp_path / "host.key"
    if not key_file.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_file.write_bytes(pem)
        key_file.chmod(0o600)
    base: dict[str, Any] = {
        "server": "http://127.0.0.1:9",
        "server_name": "auth.example.com",
        "host": "myunix.example.com",
        "client_id": "AB" * 20,
        "key_file": tmp_path / "host.key",
        "users_file": tmp_path / "pam-users",
        "timeout": 1.0,
        "log_file": tmp_path / "auth.log",
        "session_cache": None,
    }
    base.update(changes)
    return HostConfig(**base)


def test_config_round_trip_and_refusals(tmp_path: Path) -> None:
    config = _config(tmp_path, timeout=2.5)
    path = tmp_path / "pam.conf"
    path.write_text(render_config(config))
    assert load_config(path) == config
    cases = {
        "server = http://127.0.0.1:9": ("server = ftp://x", "server must be an https:// URL"),
        "timeout = 2.5": ("timeout = soon", "timeout must be a number"),
        "default_mapping = dashes": ("default_mapping = magic", "default_mapping must be"),
        "host = myunix.example.com": ("host = ", "host is missing"),
    }
    for old, (new, message) in cases.items():
        path.write_text(render_config(config).replace(old, new))
        with pytest.raises(ConfigProblem, match=message):
            load_config(path)
    path.write_text("server = x\n")
    with pytest.raises(ConfigProblem, match="not an INI file"):
        load_config(path)
    with pytest.raises(ConfigProblem, match="cannot read"):
        load_config(tmp_path / "missing.conf")


def test_key_file_must_be_private(tmp_path: Path) -> None:
    key = tmp_path / "host.key"
    key.write_bytes(b"x")
    key.chmod(0o644)
    with pytest.raises(ConfigProblem, match=f"chmod 600 {key}"):
        read_key(key)
    key.chmod(0o600)
    assert read_key(key) == b"x"


def test_unix_users_map_to_addresses(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "pam-users").write_text("# comment\njdoe  John.Doe@Example.com\nops: ops-team@example.com # inline\n")
    assert address_for("jdoe", config) == "john.doe@example.com"
    assert address_for("ops", config) == "ops-team@example.com"
    assert address_for("john.doe--gmail.com", config) == "john.doe@gmail.com"
    assert address_for("bob--xn--bcher-kva.example", config) == "bob@xn--bcher-kva.example"
    assert address_for("root", config) is None
    assert address_for("--example.com", config) is None
    strict = _config(tmp_path, default_mapping="none")
    assert address_for("john.doe--gmail.com", strict) is None
    assert address_for("jdoe", strict) == "john.doe@example.com"
    (tmp_path / "pam-users").write_text("jdoe\n")
    with pytest.raises(ConfigProblem, match="pam-users:1: expected"):
        address_for("jdoe", config)


def test_terminal_qr_code_reads_back() -> None:
    payload = "TWC1.AAAAAAAAAAAAAAAAAAAAAA." + "Bx-_9" * 75  # 402 characters: a captcha for a long address
    lines = terminal_qr(payload)
    assert lines and len(lines[0]) <= 80, "fits an 80-column terminal"
    # Rasterise the half blocks (two modules a character) and let zxing-cpp read the code.
    light = {"\u2588": (1, 1), "\u2580": (1, 0), "\u2584": (0, 1), " ": (0, 0)}
    scale = 4
    image = Image.new("L", (len(lines[0]) * scale, len(lines) * 2 * scale), 0)
    for y, line in enumerate(lines):
        for x, char in enumerate(line):
            for half, on in enumerate(light[char]):
                if on:
                    box = (x * scale, (2 * y + half) * scale, (x + 1) * scale, (2 * y + half + 1) * scale)
                    image.paste(255, box)
    found = zxingcpp.read_barcodes(image)
    assert [r.text for r in found] == [payload]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_fails_closed_with_one_log_line(tmp_path: Path, silent_port: int) -> None:
    refused = _config(tmp_path, server=f"http://127.0.0.1:{_closed_port()}")
    outcome = password_login(refused, "alice--example.com", "AAAAA", "192.0.2.1")
    assert (outcome.result, outcome.ok) == (UNAVAILABLE, False)
    assert "ConnectionRefusedError" in outcome.reason
    silent = _config(tmp_path, server=f"http://127.0.0.1:{silent_port}", timeout=0.5)
    outcome = password_login(silent, "alice--example.com", "AAAAA", None)
    assert outcome.result == UNAVAILABLE and "no answer within 0.5 s" in outcome.reason
    lines = (tmp_path / "auth.log").read_text().splitlines()
    assert len(lines) == 2
    assert "tokenward-pam: unavailable unix user 'alice--example.com' (address alice@example.com)" in lines[0]
    assert "from 192.0.2.1" in lines[0] and "AAAAA" not in "".join(lines)


def test_no_code_and_unknown_users_never_reach_the_server(tmp_path: Path, silent_port: int) -> None:
    config = _config(tmp_path, server=f"http://127.0.0.1:{silent_port}", timeout=30)
    assert password_login(config, "alice--example.com", "  ", None).result == REFUSED
    assert password_login(config, "root", "AAAAA", None).result == UNKNOWN_USER
    shown: list[str] = []

    def prompt(text: str, lines: list[str]) -> str:
        shown.append(text)
        return "x"

    outcome = conversation_login(config, "root", None, prompt, terminal_qr)
    assert outcome.result == UNKNOWN_USER and shown == []
    assert "no e-mail address for this unix user" in (tmp_path / "auth.log").read_text()


def test_a_key_that_is_not_private_is_refused_before_any_request(tmp_path: Path) -> None:
    config = _config(tmp_path, server=f"http://127.0.0.1:{_closed_port()}")
    config.key_file.chmod(0o640)
    outcome = password_login(config, "alice--example.com", "AAAAA", None)
    assert outcome.result == UNAVAILABLE and "chmod 600" in outcome.reason


def test_syslog_line_goes_to_authpriv(tmp_path: Path) -> None:
    path = Path(tempfile.mkdtemp(dir="/tmp")) / "log"  # AF_UNIX paths must be short
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        from tokenward.hostpam.flow import Outcome

        log_line(_config(tmp_path), "bob", "bob@example.com", Outcome(GRANTED, "code accepted"), None,
                 syslog_address=str(path))  # fmt: skip
        data = sock.recv(4096).decode()
    # <PRI> = facility authpriv (10) * 8 + severity info (6)
    assert data.startswith("<86>tokenward-pam[") and "granted unix user 'bob'" in data


def test_pam_exec_entry_point(tmp_path: Path) -> None:
    conf = tmp_path / "pam.conf"
    conf.write_text(render_config(_config(tmp_path, server=f"http://127.0.0.1:{_closed_port()}")))
    env = {"PAM_USER": "alice--example.com", "PAM_TYPE": "auth", "PAM_RHOST": "192.0.2.9"}
    assert pam_exec.main([f"config={conf}"], env, io.BytesIO(b"AAAAA\0")) == 1
    assert "from 192.0.2.9" in (tmp_path / "auth.log").read_text()
    assert pam_exec.main([f"config={conf}"], {**env, "PAM_TYPE": "session"}, io.BytesIO(b"")) == 1
    assert pam_exec.main([f"config={tmp_path / 'none.conf'}"], env, io.BytesIO(b"AAAAA\0")) == 1
    assert pam_exec.main([f"config={conf}"], env, io.BytesIO(b"A" * 1000)) == 1
    assert "no code was typed" in (tmp_path / "auth.log").read_text().splitlines()[-1]


class FakePamh:
    """The parts of pam_python's handle the module uses."""

    PAM_SUCCESS, PAM_AUTH_ERR, PAM_USER_UNKNOWN, PAM_AUTHINFO_UNAVAIL = 0, 7, 10, 9
    PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_ERROR_MSG, PAM_TEXT_INFO = 1, 2, 3, 4

    class exception(Exception):
        pass

    def __init__(self, user: str, authtok: str | None = None) -> None:
        self.user, self.authtok, self.rhost = user, authtok, "192.0.2.3"
        self.said: list[tuple[int, str]] = []

    class Message:
        def __init__(self, style: int, msg: str) -> None:
            self.msg_style, self.msg = style, msg

    def get_user(self, prompt: str | None) -> str:
        return self.user

    def conversation(self, message: Any) -> Any:
        self.said.append((message.msg_style, message.msg))
        return type("Response", (), {"resp": "AAAAA"})()


def test_pam_module_maps_outcomes_to_pam_codes(tmp_path: Path) -> None:
    conf = tmp_path / "pam.conf"
    conf.write_text(render_config(_config(tmp_path, server=f"http://127.0.0.1:{_closed_port()}")))
    argv = ["/usr/local/lib/tokenward-pam/pam_tokenward.py", f"config={conf}"]
    pamh = FakePamh("alice--example.com")
    assert pam_module.pam_sm_authenticate(pamh, 0, argv) == FakePamh.PAM_AUTHINFO_UNAVAIL
    # No captcha could be had: nothing asked, one error message shown.
    assert pamh.said == [
        (
            FakePamh.PAM_ERROR_MSG,
            "tokenward: the token server could not be asked; try again later or use another way in.",
        )
    ]
    assert "ConnectionRefusedError" in (tmp_path / "auth.log").read_text()
    assert pam_module.pam_sm_authenticate(FakePamh("root"), 0, argv) == FakePamh.PAM_USER_UNKNOWN
    assert pam_module.pam_sm_authenticate(FakePamh("x"), 0, [argv[0], "config=/nonexistent"]) == 9
    no_code = FakePamh("alice--example.com", authtok="")
    assert pam_module.pam_sm_authenticate(no_code, 0, [*argv, "mode=password"]) == FakePamh.PAM_AUTH_ERR
    assert pam_module.pam_sm_setcred(pamh, 0, argv) == FakePamh.PAM_SUCCESS


def test_install_writes_entry_points_that_name_the_lib_dir(tmp_path: Path) -> None:
    written = install(tmp_path / "lib")
    names = {p.relative_to(tmp_path / "lib").as_posix() for p in written}
    assert {"pam_tokenward.py", "tokenward-pam-exec", "tokenward_hostpam/flow.py"} <= names
    stub = (tmp_path / "lib" / "pam_tokenward.py").read_text()
    assert repr(str(tmp_path / "lib")) in stub
    assert (tmp_path / "lib" / "tokenward-pam-exec").stat().st_mode & 0o777 == 0o755
    assert pam_lines("exec", lib_dir=tmp_path, config="/c")[0].startswith("auth required pam_exec.so expose_authtok")
    assert "mode=conversation" in pam_lines("conversation", lib_dir=tmp_path, config="/c")[0]
    with pytest.raises(ValueError, match="unknown mode"):
        pam_lines("telepathy", config="/c")


def test_host_cli_init_and_bad_inputs(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["host", "init", "MyUnix.example.com", "--server", "http://127.0.0.1:9", "--client-id", "ab" * 20]
    result = runner.invoke(cli, [*args, "--server-name", "auth.example.com", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"p, myunix.example.com, auth.example.com, {'AB' * 20}, login" in result.stdout
    config = load_config(tmp_path / "pam.conf")
    assert (config.host, config.key_file, config.timeout) == ("myunix.example.com", tmp_path / "host.key", 10.0)
    assert (tmp_path / "host.key").stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(read_key(tmp_path / "host.key"), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    again = runner.invoke(cli, [*args, "--server-name", "auth.example.com", "--dir", str(tmp_path)])
    assert again.exit_code == 1 and "already exists; use --force" in again.output
    unreachable = runner.invoke(cli, [*args, "--dir", str(tmp_path / "other")])
    assert unreachable.exit_code == 1 and "give --server-name" in unreachable.output
    bad_url = runner.invoke(cli, ["host", "init", "h", "--server", "ftp://x", "--client-id", "x"])
    assert bad_url.exit_code == 1 and "https:// URL" in bad_url.output
    bad_mode = runner.invoke(cli, ["host", "pam-config", "--mode", "telepathy"])
    assert bad_mode.exit_code == 1 and "unknown mode" in bad_mode.output
    check = runner.invoke(
        cli, ["host", "check", "--config", str(tmp_path / "pam.conf"), "-u", "jo--x.org", "-u", "root"]
    )
    assert check.exit_code == 1 and "cannot reach http://127.0.0.1:9" in check.output
    assert "jo--x.org -> jo@x.org" in check.output and "root -> no address: refused" in check.output


def test_session_cache_is_private_and_picky(tmp_path: Path) -> None:
    cache = SessionCache(tmp_path / "run" / "session")
    assert cache.read() is None
    cache.write("tw1si.k1.abc")
    assert cache.read() == "tw1si.k1.abc"
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "run" / "session").stat().st_mode & 0o777 == 0o600
    (tmp_path / "run" / "session").chmod(0o644)
    assert cache.read() is None, "a cache others can read is not used"
    cache.write("not a token")
    assert cache.read() is None
    (tmp_path / "elsewhere").write_text("tw1si.k1.stolen")
    (tmp_path / "elsewhere").chmod(0o600)
    cache.clear()
    (tmp_path / "run" / "session").symlink_to(tmp_path / "elsewhere")
    assert cache.read() is None, "a symlink is not followed"
    cache.clear()
    assert not (tmp_path / "run" / "session").exists() and cache.read() is None


@pytest.mark.skipif(
    not Path("/usr/bin/python3").exists(), reason="no system python3 (/usr/bin/python3) on this machine"
)
def test_the_installed_helper_runs_under_the_system_python(tmp_path: Path) -> None:
    """No virtualenv at login: the copied package alone, under /usr/bin/python3 -I, fails closed and says why."""
    install(tmp_path / "lib")
    conf = tmp_path / "pam.conf"
    conf.write_text(render_config(_config(tmp_path, server=f"http://127.0.0.1:{_closed_port()}")))
    env = {"PAM_USER": "alice--example.com", "PAM_TYPE": "auth", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["/usr/bin/python3", "-I", str(tmp_path / "lib" / "tokenward-pam-exec"), f"config={conf}"],
        input=b"AAAAA\0",
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    line = (tmp_path / "auth.log").read_text().strip()
    assert "tokenward-pam: unavailable unix user 'alice--example.com'" in line
    assert "ConnectionRefusedError" in line or "apt-get install python3-cryptography" in line, line
