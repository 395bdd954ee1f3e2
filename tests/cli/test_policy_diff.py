"""`tokenward policy diff` as a policy repository's CI runs it: exit codes, JSON, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import clear_tokenward_env
from tests.policy.helpers import uncommented
from tokenward.cli.main import app
from tokenward.policy import sample_files

runner = CliRunner()
CLIENT = "CLIENTID-A"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def write_policy(path: Path) -> Path:
    path.mkdir()
    for name, text in sample_files().items():
        (path / name).write_text(uncommented(text) if name.endswith(".csv") else text)
    return path


@pytest.fixture
def sides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    clear_tokenward_env(monkeypatch)
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(tmp_path / "data"))
    return write_policy(tmp_path / "old"), write_policy(tmp_path / "new")


def append(path: Path, line: str) -> None:
    with path.open("a") as handle:
        handle.write(line + "\n")


def test_identical_policies_exit_0(sides: tuple[Path, Path]) -> None:
    old, new = sides
    code, out, _ = run("policy", "diff", str(old), str(new))
    assert code == 0, out
    assert out.startswith("0 decision(s) flip of ")


def test_a_deny_row_flips_the_allowed_questions_and_exits_1(sides: tuple[Path, Path]) -> None:
    old, new = sides
    append(new / "userpolicy.csv", f"p, alice@example.com, mytoken.server, {CLIENT}, deny")
    code, out, _ = run("policy", "diff", str(old), str(new), "--json")
    assert code == 1, out
    document = json.loads(out)
    assert document["rows"]["userpolicy.csv"] == {"added": 1, "removed": 0}
    (group,) = document["groups"]
    assert group["change"] == "added" and group["row"] == f"p, alice@example.com, mytoken.server, {CLIENT}, deny"
    assert group["where"].startswith("new:userpolicy.csv:")
    assert group["allow_to_deny"] == group["count"] > 0 and group["deny_to_allow"] == 0
    requests = [example["request"] for example in group["examples"]]
    assert requests and all(r["sub"] == "alice@example.com" and r["obj"] == CLIENT for r in requests)
    assert {r["act"] for r in requests} <= {"login", "ask", "poke"}
    code, text, _ = run("policy", "diff", str(old), str(new))
    assert code == 1 and "added    new:userpolicy.csv:" in text and "allow -> deny" in text


def test_a_removed_row_is_named_from_the_old_side(sides: tuple[Path, Path]) -> None:
    old, new = sides
    lines = (new / "userpolicy.csv").read_text().splitlines()
    kept = [line for line in lines if "alice@example.com, mytoken.server, TOKENWARD, admin" not in line]
    (new / "userpolicy.csv").write_text("\n".join(kept) + "\n")
    code, out, _ = run("policy", "diff", str(old), str(new), "--json")
    assert code == 1
    (group,) = json.loads(out)["groups"]
    assert group["change"] == "removed" and group["where"].startswith("old:userpolicy.csv:")
    assert group["examples"][0]["request"]["act"] == "admin"


def test_a_single_file_against_a_data_dir(sides: tuple[Path, Path], tmp_path: Path) -> None:
    old, _ = sides
    edited = tmp_path / "edited.csv"
    edited.write_text((old / "captchapolicy.csv").read_text() + "p, *@example.com, mytoken.server, CAPTCHA, deny\n")
    code, out, _ = run("policy", "diff", str(old), f"captchapolicy.csv={edited}", "--json")
    assert code == 1, out
    document = json.loads(out)
    assert {g["file"] for g in document["groups"]} == {"captchapolicy.csv"}
    assert document["rows"]["userpolicy.csv"] == {"added": 0, "removed": 0}  # taken from the dir side


def test_requests_file_is_asked(sides: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = sides
    append(new / "userpolicy.csv", "p, *@example.org, mytoken.server, CLIENTID-Z, login")
    requests = tmp_path / "requests.txt"
    requests.write_text(
        "# recorded\n"
        "dave@example.org, mytoken.server, CLIENTID-Z, login\n"
        '{"sub": "erin@example.org", "dom": "mytoken.server", "obj": "CLIENTID-B", "act": "login"}\n'
    )
    code, out, _ = run("policy", "diff", str(old), str(new), "--requests", str(requests), "--no-generate", "--json")
    assert code == 1, out
    document = json.loads(out)
    assert document["questions"] == 2 and document["flips"] == 1
    assert document["groups"][0]["examples"][0]["request"]["sub"] == "dave@example.org"


def test_dialect_change_of_the_same_files(sides: tuple[Path, Path]) -> None:
    old, _ = sides
    code, out, _ = run(
        "policy", "diff", str(old), str(old), "--dialect-from", "compat", "--dialect-to", "glob", "--json"
    )
    assert code == 1
    document = json.loads(out)
    assert document["old"]["dialect"] == "compat" and document["new"]["dialect"] == "glob"
    assert all(group["change"] == "kept" for group in document["groups"])
    code, _, _ = run("policy", "diff", str(old), str(old), "--dialect", "compat")
    assert code == 0


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("bad-row", "NEW ("),
        ("bad-regex", "invalid regular expression"),
        ("missing", "cannot read"),
        ("bad-name", "not a policy file name"),
        ("bad-requests", "requests.txt:2: expected 'sub, dom, obj, act'"),
        ("bad-json", "requests.txt:1: not valid JSON"),
        ("bad-dialect", "unknown policy dialect"),
        ("empty-dir", "no policy files"),
    ],
)
def test_bad_input_is_one_clear_error_and_exit_2(
    sides: tuple[Path, Path], tmp_path: Path, setup: str, message: str
) -> None:
    old, new = sides
    args = ["policy", "diff", str(old), str(new)]
    requests = tmp_path / "requests.txt"
    if setup == "bad-row":
        append(new / "userpolicy.csv", "p, only, three")
    elif setup == "bad-regex":
        append(new / "userpolicy.csv", "p, (unclosed, mytoken.server, C, login")
        args += ["--dialect", "compat"]
    elif setup == "missing":
        args[3] = f"userpolicy.csv={tmp_path / 'nope.csv'}"
    elif setup == "bad-name":
        args[3] = str(tmp_path / "edited.csv")
    elif setup == "bad-requests":
        requests.write_text("a@b.c, d, C, login\nonly, two\n")
        args += ["--requests", str(requests)]
    elif setup == "bad-json":
        requests.write_text("{not json\n")
        args += ["--requests", str(requests)]
    elif setup == "bad-dialect":
        args += ["--dialect-to", "regex"]
    elif setup == "empty-dir":
        (tmp_path / "empty").mkdir()
        args[3] = str(tmp_path / "empty")
    code, out, err = run(*args)
    assert code == 2, (out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "Traceback" not in err
