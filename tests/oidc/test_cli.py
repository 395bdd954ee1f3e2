"""`tokenward oidc client`: register, list, rotate, remove; bad input gives one error line and exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.oidc.conftest import Registered, cli_ok
from tokenward.cli.main import app as cli


def run(data: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["-d", str(data), *args])
    return result.exit_code, result.output


def test_list_show_rotate_remove(oidc_data: tuple[Path, Registered, Registered]) -> None:
    data, confidential, public = oidc_data
    lines = [json.loads(line) for line in cli_ok(data, "oidc", "client", "list", "--json").splitlines()]
    assert {c["name"]: c["type"] for c in lines} == {"Wiki": "confidential", "SPA": "public"}
    assert all("secret" not in json.dumps(c) for c in lines)
    shown = json.loads(cli_ok(data, "oidc", "client", "show", "Wiki"))
    assert shown["client_id"] == confidential.client_id and len(shown["app_hash"]) == 128
    secret = cli_ok(data, "oidc", "client", "rotate-secret", confidential.client_id).strip()
    assert secret.startswith("twocs_") and secret != confidential.client_secret
    code, out = run(data, "oidc", "client", "rotate-secret", "SPA")
    assert code == 1 and "public client" in out
    assert "removed OpenID client SPA" in cli_ok(data, "oidc", "client", "remove", public.client_id)
    code, out = run(data, "oidc", "client", "show", "SPA")
    assert code == 1 and "no OpenID client" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-r", "ftp://x.example.com/cb"], "must use https"),
        (["-r", "http://app.example.com/cb"], "must use https"),
        (["-r", "https://app.example.com/cb#frag"], "fragment"),
        (["-r", "/relative"], "needs a host"),
        (["-r", "https://user:pw@app.example.com/"], "no user:password@"),
        (["-r", "https://a.example.com/", "--post-logout-redirect-uri", "javascript:alert(1)"], "post-logout"),
    ],
)
def test_bad_redirect_uris_are_refused(
    oidc_data: tuple[Path, Registered, Registered], args: list[str], message: str
) -> None:
    code, out = run(oidc_data[0], "oidc", "client", "add", "Bad", *args)
    assert code == 1 and "error:" in out and message in out


def test_duplicate_name_is_refused(oidc_data: tuple[Path, Registered, Registered]) -> None:
    code, out = run(oidc_data[0], "oidc", "client", "add", "Wiki", "-r", "https://w.example.com/cb")
    assert code == 1 and "already exists" in out
