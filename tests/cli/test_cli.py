"""The CLI as a user drives it (Typer's runner, in-process)."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import clear_tokenward_env
from tokenward.cli.main import app
from tokenward.keys import TimeCode
from tokenward.policy import PolicyHolder, is_admin

runner = CliRunner()


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clear_tokenward_env(monkeypatch)
    path = tmp_path / "data"
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(path))
    return path


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def current_code(data: Path) -> str:
    return str(json.loads((data / "timecode.json").read_text())["current"])


def test_init_creates_private_data_dir(data: Path) -> None:
    code, out, _ = run("init", "--server-name", "Auth.Example.com")
    assert code == 0, out
    assert "Initialized" in out and "auth.example.com" in out
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "timecode.json").stat().st_mode) == 0o600
    assert TimeCode.parse(current_code(data)).label % 15 == 0
    assert current_code(data) not in out  # init never prints the secret


def test_init_file_modes_are_the_documented_ones(data: Path) -> None:
    # docs/configuration.md's data-dir table once said 0644 for policy files that init writes 0600.
    assert run("init", "--server-name", "auth.example.com")[0] == 0
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| (`[^|]+`) \| (0[0-7]{3}) \|", doc, re.M))
    assert rows, "the data-dir table in docs/configuration.md lost its mode column"
    for names, mode in rows.items():
        patterns = re.findall(r"`([^`]+)`", names)
        files = [f for pattern in patterns for f in data.glob(pattern)]
        assert files, f"docs/configuration.md names {names} but init created none"
        for path in files:
            assert f"{stat.S_IMODE(path.stat().st_mode):04o}" == mode, f"{path.name}: docs say {mode}"


def test_init_refuses_existing_then_force_backs_up(data: Path) -> None:
    assert run("init", "--server-name", "auth.example.com")[0] == 0
    old = current_code(data)
    code, _, err = run("init", "--server-name", "other.example.com")
    assert code == 1 and "already initialized" in err and "--force" in err
    assert current_code(data) == old
    code, out, _ = run("init", "--server-name", "auth.example.com", "--exist-ok")
    assert code == 0 and "nothing changed" in out and current_code(data) == old
    code, out, _ = run("init", "--server-name", "other.example.com", "--force")
    assert code == 0 and "previous time code was saved" in out
    backups = list(data.glob("timecode.json.bak-*"))
    assert len(backups) == 1 and json.loads(backups[0].read_text())["current"] == old
    assert stat.S_IMODE(backups[0].stat().st_mode) == 0o600
    assert current_code(data) != old


def test_init_rejects_bad_server_name(data: Path) -> None:
    code, _, err = run("init", "--server-name", "not a host")
    assert code == 1 and "--server-name" in err and not data.exists()


def test_server_name_and_showowner(data: Path) -> None:
    code, _, err = run("server-name")
    assert code == 1 and "tokenward init" in err and "Traceback" not in err
    run("init", "--server-name", "auth2.example.com")
    assert run("server-name")[1].strip() == "auth2.example.com"
    assert run("-o")[1].strip() == "auth2.example.com"
    assert run("--showowner")[1].strip() == "auth2.example.com"


def test_timecode_generate_set_show_rotate(data: Path) -> None:
    run("init", "--server-name", "auth.example.com")
    generated = run("timecode", "generate")[1].strip()
    assert TimeCode.parse(generated)
    code, out, _ = run("timecode", "set", "-", input=generated + "\n")
    assert code == 0 and "Succeeded" in out and current_code(data) == generated
    code, out, _ = run("timecode", "show")
    assert code == 0 and TimeCode.parse(generated).key_id in out and generated not in out
    assert generated in run("timecode", "show", "--reveal")[1]
    code, out, _ = run("timecode", "rotate")
    assert code == 0 and "New Time Code: tw1." in out
    assert current_code(data) != generated
    assert f"Previous: key id {TimeCode.parse(generated).key_id}" in run("timecode", "show")[1]


@pytest.mark.parametrize("bad", ["tw1.123", "28768365", "tw9.29614680.AAAA.BBBBBB", ""])
def test_timecode_set_refuses_bad_codes_and_changes_nothing(data: Path, bad: str) -> None:
    run("init", "--server-name", "auth.example.com")
    before = (data / "timecode.json").read_bytes()
    code, out, err = run("timecode", "set", "-", input=bad + "\n")
    assert code == 1 and err.startswith("error: ") and "Traceback" not in out + err
    assert (data / "timecode.json").read_bytes() == before


def test_truncated_code_is_refused(data: Path) -> None:
    run("init", "--server-name", "auth.example.com")
    good = run("timecode", "generate")[1].strip()
    code, _, err = run("timecode", "set", good[:-2])
    assert code == 1 and "truncated" in err


def test_interactive_like_the_original(data: Path) -> None:
    run("init", "--server-name", "auth.example.com")
    code, out, _ = run("-t", input="\n")
    assert code == 0
    assert "Enter Synchronization Time Code: [Press Enter To Generate a New Time Code]" in out
    assert "Generating New Time Code..." in out and "New Time Code: tw1." in out
    assert "Attempting to Set This Token Server To Use This Time Code... Succeeded." in out
    chosen = run("timecode", "generate")[1].strip()
    code, out, _ = run("timecode", "interactive", input=chosen + "\n")
    assert code == 0 and current_code(data) == chosen
    code, _, err = run("-t", input="nonsense\n")
    assert code == 1 and "not a time code" in err and current_code(data) == chosen


def test_unsafe_timecode_file_is_refused_with_the_fix(data: Path) -> None:
    run("init", "--server-name", "auth.example.com")
    (data / "timecode.json").chmod(0o644)
    code, _, err = run("timecode", "show")
    assert code == 1 and f"chmod 600 {data / 'timecode.json'}" in err


def test_user_enroll_makes_the_start_up_checks_serve_makes(data: Path) -> None:
    """`user enroll` uses the runtime's enrolment flow (cli_runtime), not a stand-in built beside it."""
    run("init", "--server-name", "auth.example.com")
    code, out, _ = run("user", "enroll", "Alice@Example.com")
    assert code == 0 and "alice@example.com" in out
    (data / "userpolicy.csv").write_text("p, alice@example.com\n", encoding="utf-8")  # a broken policy row
    code, _, err = run("user", "enroll", "alice@example.com")
    assert code == 1 and "userpolicy.csv" in err
    (data / "userpolicy.csv").unlink()
    (data / "timecode.json").chmod(0o644)
    code, _, err = run("user", "enroll", "alice@example.com")
    assert code == 1 and f"chmod 600 {data / 'timecode.json'}" in err


def test_serve_runs_uvicorn_on_asyncio_unless_told_otherwise(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not uvloop: a saturated uvloop left most of 200 new connections for seconds in the accept queue
    (bench/README.md, list API)."""
    import uvicorn

    from tokenward.web.httpserver import CoalescingHttpToolsProtocol

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    run("init", "--server-name", "auth.example.com")
    code, _, err = run("serve", "--port", "8123")
    assert code == 0, err
    assert len(calls) == 1 and calls[0]["loop"] == "asyncio" and calls[0]["port"] == 8123
    assert calls[0]["http"] is CoalescingHttpToolsProtocol  # one write per response (tokenward/web/httpserver.py)
    monkeypatch.setenv("TOKENWARD_EVENT_LOOP", "uvloop")  # the other trade, chosen by the setting
    code, _, err = run("serve", "--port", "8123")
    assert code == 0, err
    assert len(calls) == 2 and calls[1]["loop"] == "uvloop"
    monkeypatch.setenv("TOKENWARD_EVENT_LOOP", "trio")
    code, _, err = run("serve", "--port", "8123")
    assert code == 1 and "TOKENWARD_EVENT_LOOP" in err and len(calls) == 2


def test_bad_setting_is_one_line(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENWARD_LOG_FORMAT", "xml")
    code, _, err = run("server-name")
    assert code == 1 and err.count("\n") == 1 and "TOKENWARD_LOG_FORMAT" in err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["init"],
        ["serve"],
        ["server-name"],
        ["timecode"],
        ["timecode", "set"],
        ["timecode", "rotate"],
        ["db"],
        ["db", "upgrade"],
    ],
)
def test_every_command_explains_itself(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.stdout and len(result.stdout.splitlines()) > 5


def test_init_writes_samples_and_first_admin(data: Path) -> None:
    code, out, _ = run("init", "--server-name", "auth.example.com", "--admin", "Alice@Example.com")
    assert code == 0 and "userpolicy.csv" in out
    assert "p, alice@example.com, auth.example.com, TOKENWARD, admin" in (data / "userpolicy.csv").read_text()
    holder = PolicyHolder(data, dialect="glob")  # the engine accepts what init wrote
    holder.load()
    assert is_admin(holder.policy, "alice@example.com", "auth.example.com")
    assert not is_admin(holder.policy, "bob@example.com", "auth.example.com")


def test_init_rejects_bad_admin(data: Path) -> None:
    code, _, err = run("init", "--server-name", "auth.example.com", "--admin", "alice")
    assert code == 1 and "--admin" in err and not data.exists()
