from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tokenward.cli.main import app

runner = CliRunner()


def test_create_from_yaml_stdin_decode_and_revoke(data_dir: Path) -> None:
    doc = "jti: t1\ntokenward:\n  plugins:\n    - type: noop\n"
    r = runner.invoke(app, ["config-token", "create", "-"], input=doc)
    assert r.exit_code == 0, r.output
    token, url = r.stdout.splitlines()
    assert url == "config_token=" + token  # compact JWE is already URL-safe
    r = runner.invoke(app, ["config-token", "decode", token])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["kind"] == "jwe" and out["document"]["jti"] == "t1"
    assert out["document"]["tokenward"]["plugins"] == [{"type": "noop"}]
    r = runner.invoke(app, ["config-token", "revoke", token])
    assert r.exit_code == 0, r.output
    assert "revoked config token t1" in r.stdout
    r = runner.invoke(app, ["config-token", "revoke", "t1"])
    assert r.exit_code == 1 and "already revoked" in r.output


def test_create_json_file_signed_only_and_pointer(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"tokenward": {"plugins": [{"type": "noop"}]}}))
    r = runner.invoke(app, ["config-token", "create", str(path), "--signed-only", "--expires-in", "60"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0].count(".") == 2
    r = runner.invoke(app, ["config-token", "create", "--pointer", "primary", "42"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["config-token", "decode", r.stdout.splitlines()[0]])
    assert json.loads(r.stdout)["document"]["tokenward"] == {
        "config_token_store_id": "primary",
        "config_token_id": "42",
    }


def test_create_refuses_a_bad_plugin_with_its_path(data_dir: Path) -> None:
    r = runner.invoke(app, ["config-token", "create", "-"], input='{"tokenward": {"plugins": [{"type": "jwt"}]}}')
    assert r.exit_code == 1
    assert "tokenward.plugins.0.jwt.algorithms" in r.output
    doc = {"type": "source_identifier", "login_url": "https://auth.example.com/login", "login_redirect": "api"}
    r = runner.invoke(app, ["config-token", "create", "-"], input=json.dumps({"tokenward": {"plugins": [doc]}}))
    assert r.exit_code == 1
    assert "tokenward.plugins.0.source_identifier.login_redirect: Input should be 'browsers' or 'always'" in r.output
    r = runner.invoke(
        app,
        ["config-token", "create", "-"],
        input=json.dumps({"tokenward": {"plugins": [{**doc, "login_redirect": "always"}]}}),
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["config-token", "create", "-"], input="{not: [valid")
    assert r.exit_code == 1 and "neither JSON nor YAML" in r.output
