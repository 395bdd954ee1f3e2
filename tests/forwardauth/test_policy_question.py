"""`tokenward policy check --as-verify URL` answers exactly as `/verify` does for the same request."""

from __future__ import annotations

import base64

import httpx
import pytest
from typer.testing import CliRunner

from tokenward.cli.main import app
from tokenward.forwardauth.config_token import encode_token
from tokenward.forwardauth.plugins.base import UserInfo
from tokenward.forwardauth.policy_question import request_for_url, verify_question
from tokenward.forwardauth.schema import PolicyBlock
from tokenward.policy.files import read_sources
from tokenward.runtime import Runtime

runner = CliRunner()
ROWS = (
    "\np, alice@example.com, app.example.com, wiki, GET\n"
    # A row naming the port never matches: /verify asks about the host without it.
    "p, bob@example.com, app.example.com:8443, wiki, GET\n"
    "p, carol@example.com, app.example.com, wiki, GET\n"
    "p, carol@example.com, app.example.com, wiki, deny\n"
)
CASES = [
    ("alice@example.com", "GET", "https://app.example.com:8443/docs?x=1"),
    ("alice@example.com", "DELETE", "https://app.example.com/docs"),
    ("alice@example.com", "GET", "http://other.example.com/"),
    ("bob@example.com", "GET", "https://app.example.com:8443/docs"),
    ("carol@example.com", "GET", "https://app.example.com/"),
]


def test_the_default_domain_is_the_host_without_its_port() -> None:
    question = verify_question(
        PolicyBlock(object="wiki"), UserInfo(sub="alice@example.com"), request_for_url("https://App.Example.com:8443/x")
    )
    assert (question.subject, question.domain, question.object, question.action) == (
        "alice@example.com",
        "app.example.com",
        "wiki",
        "GET",
    )
    assert question.file == "userpolicy.csv"
    resource = verify_question(PolicyBlock(object="wiki"), UserInfo(sub="backup-bot"), request_for_url("https://a/"))
    assert resource.file == "resourcepolicy.csv"


@pytest.mark.parametrize(("user", "method", "url"), CASES)
async def test_cli_and_verify_give_the_same_answer(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, user: str, method: str, url: str
) -> None:
    data = runtime.settings.data_dir
    with (data / "userpolicy.csv").open("a", encoding="utf-8") as policy:
        policy.write(ROWS)
    assert runtime.policy.apply(dict(read_sources(data))).error is None
    token = encode_token(
        {"tokenward": {"plugins": [{"type": "app_token"}], "policy": {"object": "wiki"}}}, runtime.keyring
    )
    _, secret = await runtime.app_tokens.create(owner=user, created_by="test")
    credentials = base64.b64encode(f"{user}:{secret}".encode()).decode()
    r = await client.get(
        "/verify",
        params={"config_token": token},
        headers={"X-Original-URL": url, "X-Original-Method": method, "Authorization": f"Basic {credentials}"},
    )
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(data))
    args = ["policy", "check", "--as-verify", url, "--method", method, "--user", user, "--config-token", token]
    cli = runner.invoke(app, args)
    assert r.status_code in (200, 403), r.text
    assert cli.exit_code == (0 if r.status_code == 200 else 1), cli.output
    host = url.split("//")[1].split("/")[0].split(":")[0]
    assert f"{user}, {host}, wiki, {method}" in cli.stdout  # the question, host without port
    assert "userpolicy.csv" in cli.stdout
    # --object asks the same question without the token (default domain and action).
    plain = runner.invoke(
        app, ["policy", "check", "--as-verify", url, "--method", method, "--user", user, "--object", "wiki"]
    )
    assert plain.exit_code == cli.exit_code, plain.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-verify", "https://a/"], "--as-verify needs --user"),
        (["--as-verify", "https://a/", "--user", "alice@example.com"], "or --object OBJ"),
        (["--as-verify", "ftp://a/", "--user", "a@example.com", "--object", "w"], "must be http or https"),
        (["--as-verify", "https://a/", "--user", "a@example.com", "--object", "w", "--method", "FETCH"], "HTTP method"),
        (["--as-verify", "https://a/", "--user", "a@example.com", "--config-token", "garbage"], "config token"),
        (["a@example.com", "--as-verify", "https://a/", "--user", "a@example.com", "--object", "w"], "not both"),
        (["a@example.com", "auth.example.com"], "SUB DOM OBJ ACT"),
    ],
)
def test_bad_as_verify_input_is_a_clear_error(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(runtime.settings.data_dir))
    result = runner.invoke(app, ["policy", "check", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_a_pointer_token_is_refused_with_what_to_give_instead(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(runtime.settings.data_dir))
    pointer = encode_token({"tokenward": {"config_token_store_id": "primary", "config_token_id": "7"}}, runtime.keyring)
    args = ["--as-verify", "https://a/", "--user", "a@example.com", "--config-token", pointer]
    result = runner.invoke(app, ["policy", "check", *args])
    assert result.exit_code == 2 and "pointer" in result.stderr and "primary" in result.stderr
