from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from joserfc import jwt
from joserfc.jwk import OctKey
from typer.testing import CliRunner

from tests.helpers import clear_tokenward_env, init_data_dir
from tokenward.cli.main import app
from tokenward.errors import BadRequest
from tokenward.forwardauth.eas import _evp_bytes_to_key, convert, open_eas_token

SIGN, ENCRYPT = "sign-secret-of-eas", "encrypt-secret-of-eas"


def eas_token(payload: dict[str, Any]) -> str:
    """What eas's bin/generate-config-token.js makes (createCipher aes-256-cbc over a HS256 JWT)."""
    inner = jwt.encode({"alg": "HS256"}, payload, OctKey.import_key(SIGN.encode())).encode()
    key, iv = _evp_bytes_to_key(ENCRYPT.encode())
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    data = padder.update(inner) + padder.finalize()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


PAYLOAD = {
    "aud": "wiki",
    "eas": {
        "plugins": [
            {"type": "oidc", "issuer": {"discover_url": "https://idp/"}},
            {
                "type": "htpasswd",
                "htpasswd": "bob:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=",
                "pcb": {
                    "skip": [
                        {
                            "query_engine": "jp",
                            "query": "$.req.headers.x",
                            "rule": {"method": "regex", "value": "/^ok$/i"},
                        },
                        {"query_engine": "js", "query": "process.exit()", "rule": {"method": "eq", "value": 1}},
                    ]
                },
            },
            {"type": "jwt", "config": {"secret": "s" * 20, "options": {"issuer": "me"}}},
        ],
        "custom_service_headers": {"X-A": {}},
    },
}


def test_open_and_convert() -> None:
    payload = open_eas_token(eas_token(PAYLOAD), sign_secret=SIGN, encrypt_secret=ENCRYPT)
    doc, notes = convert(payload)
    plugins = doc["tokenward"]["plugins"]
    assert [p["type"] for p in plugins] == ["htpasswd", "jwt"]
    assert plugins[0]["pcb"]["skip"][0]["rule"] == {"method": "regex", "value": "^ok$", "case_insensitive": True}
    assert plugins[1] == {"type": "jwt", "algorithms": ["HS256"], "secret": "s" * 20, "issuer": "me"}
    assert any("oidc" in n for n in notes) and any("'js'" in n for n in notes)
    assert any("custom_service_headers" in n for n in notes)


def test_pointer() -> None:
    doc, notes = convert({"eas": {"config_token_store_id": "primary", "config_token_id": "1"}})
    assert doc == {"tokenward": {"config_token_store_id": "primary", "config_token_id": "1"}} and not notes


def test_wrong_secrets_and_garbage() -> None:
    token = eas_token(PAYLOAD)
    for kwargs in ({"sign_secret": "x", "encrypt_secret": ENCRYPT}, {"sign_secret": SIGN, "encrypt_secret": "x"}):
        with pytest.raises(BadRequest) as info:
            open_eas_token(token, **kwargs)
        assert info.value.error_code == "eas_token_invalid"
    with pytest.raises(BadRequest):
        open_eas_token("%%%", sign_secret=SIGN, encrypt_secret=ENCRYPT)
    with pytest.raises(BadRequest) as info:
        convert({"eas": {"plugins": [{"type": "ldap"}]}})
    assert info.value.error_code == "eas_unmappable"


def test_cli_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_tokenward_env(monkeypatch)
    init_data_dir(tmp_path / "data")
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EAS_CONFIG_TOKEN_SIGN_SECRET", SIGN)
    runner = CliRunner()
    from urllib.parse import quote

    r = runner.invoke(app, ["config-token", "import-eas", quote(eas_token(PAYLOAD)), "--encrypt-secret", ENCRYPT])
    assert r.exit_code == 0, r.output
    token = r.stdout.splitlines()[0]
    assert "not imported: eas.plugins.0 (oidc)" in r.stderr
    decoded = json.loads(runner.invoke(app, ["config-token", "decode", token]).stdout)
    assert decoded["document"]["aud"] == "wiki"


SHORT = {
    "jti": "eas-1",
    "eas": {
        "plugins": [
            {"type": "jwt", "config": {"secret": "short-secret", "options": {"issuer": "me"}}},
            {"type": "htpasswd", "htpasswd": "bob:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI="},
            {"type": "forward", "url": "not a url"},
        ]
    },
}


def test_a_short_jwt_secret_refuses_that_plugin_only() -> None:
    # Once the whole token was refused because one jwt secret had fewer than 16 characters.
    doc, notes = convert(SHORT)
    assert [p["type"] for p in doc["tokenward"]["plugins"]] == ["htpasswd"]
    short = [n for n in notes if n.startswith("eas.plugins.0 (jwt)")]
    assert len(short) == 1 and "12 characters" in short[0] and "at least 16" in short[0]
    assert "short-secret" not in " ".join(notes)  # never the secret itself
    assert any(n.startswith("eas.plugins.2 (forward)") and "url" in n for n in notes)


def test_cli_import_reports_each_plugin_left_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_tokenward_env(monkeypatch)
    init_data_dir(tmp_path / "data")
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    args = ["config-token", "import-eas", eas_token(SHORT), "--sign-secret", SIGN, "--encrypt-secret", ENCRYPT]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "not imported: eas.plugins.0 (jwt)" in r.stderr and "not imported: eas.plugins.2 (forward)" in r.stderr
    assert "imported 1 of 3 plugins" in r.stderr
    decoded = json.loads(runner.invoke(app, ["config-token", "decode", r.stdout.splitlines()[0]]).stdout)
    assert [p["type"] for p in decoded["document"]["tokenward"]["plugins"]] == ["htpasswd"]
    # --strict refuses to make a token that leaves anything behind.
    r = runner.invoke(app, [*args, "--strict"])
    assert r.exit_code == 1 and "not imported: eas.plugins.0 (jwt)" in r.stderr and not r.stdout
    # Nothing importable at all: an error naming every reason, no token.
    only_short = {"eas": {"plugins": [SHORT["eas"]["plugins"][0]]}}  # type: ignore[index]
    args[2] = eas_token(only_short)
    r = runner.invoke(app, args)
    assert r.exit_code == 1 and "12 characters" in r.stderr and not r.stdout


def test_ldap_plugin_is_carried_over() -> None:
    """eas's ldap (node-ldapauth-fork connection options) becomes tokenward's ldap plugin."""
    plugin = {
        "type": "ldap",
        "realm": "wiki",
        "session_cache_ttl": 900,
        "connection": {
            "url": "ldap://ldap.example.com",
            "bindDN": "cn=eas,dc=example,dc=com",
            "bindCredentials": "service-password",
            "searchBase": "ou=people,dc=example,dc=com",
            "searchFilter": "(uid={{username}})",
            "groupSearchBase": "ou=groups,dc=example,dc=com",
            "groupSearchFilter": "(member={{dn}})",
            "starttls": True,
            "tlsOptions": {"ca": ["-----BEGIN CERTIFICATE-----"]},
        },
    }
    doc, notes = convert({"eas": {"plugins": [plugin]}})
    assert doc["tokenward"]["plugins"] == [
        {
            "type": "ldap",
            "url": "ldap://ldap.example.com",
            "user_base_dn": "ou=people,dc=example,dc=com",
            "bind_dn": "cn=eas,dc=example,dc=com",
            "bind_password": "service-password",
            "group_base_dn": "ou=groups,dc=example,dc=com",
            "user_filter": "(uid={username})",
            "group_filter": "(member={dn})",
            "start_tls": True,
            "cache_seconds": 900,
            "realm": "wiki",
        }
    ]
    assert any("tlsOptions" in n and "ca_file" in n for n in notes)
    assert not any("service-password" in n for n in notes)
