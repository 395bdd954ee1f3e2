"""The reference authenticator: key file core, and `tokenward authenticator` driven against a live server."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from typer.testing import CliRunner, Result

from tests.helpers import enrollment_code_in
from tests.identity.helpers import ORIGIN, SERVER, prepare_data_dir
from tokenward.cli.main import app as cli
from tokenward.errors import ConfigError, Unauthorized
from tokenward.identity.captcha import CaptchaPlaintext, pkce_challenge, seal_captcha
from tokenward.identity.client_tokens import b64u_of_public
from tokenward.identity.encoding import b64u_decode
from tokenward.identity.keyfile import open_key_file, parse_key_file, seal_key_file
from tokenward.keys import Secret
from tokenward.settings import Settings
from tokenward.web.app import create_app

PASS_ENV = "TW_TEST_AUTHENTICATOR_PASSPHRASE"


def test_key_file_round_trip_and_refusals() -> None:
    key = X25519PrivateKey.generate()
    data = seal_key_file(key, Secret(b"correct horse"), salt=bytes(16), nonce=bytes(12), n=2**14)
    assert b"correct horse" not in data
    assert parse_key_file(data).public_key == b64u_of_public(key)
    assert b64u_of_public(open_key_file(data, Secret(b"correct horse"))) == b64u_of_public(key)
    with pytest.raises(Unauthorized) as wrong:
        open_key_file(data, Secret(b"battery staple"))
    assert wrong.value.error_code == "passphrase_wrong"
    # A weakened KDF parameter is part of the associated data: refused, not trusted.
    weakened = data.replace(b'"n": 16384', b'"n": 32768')
    assert weakened != data
    with pytest.raises(Unauthorized):
        open_key_file(weakened, Secret(b"correct horse"))
    for garbage in (b"", b"{}", b"not json", b"x" * 10_000, data.replace(b'"kdf": "scrypt"', b'"kdf": "none"')):
        with pytest.raises(ConfigError) as bad:
            open_key_file(garbage, Secret(b"correct horse"))
        assert bad.value.error_code == "keyfile_invalid"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    url: str
    data: Path
    client_id: str

    async def run(self, *args: str, input: str | None = None) -> Result:
        # The CLI makes blocking HTTP calls to the server on this loop: give it a thread.
        return await asyncio.to_thread(CliRunner().invoke, cli, list(args), input=input)


@pytest.fixture
async def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Live]:
    data = tmp_path / "data"
    client_id = prepare_data_dir(data, monkeypatch)
    monkeypatch.setenv(PASS_ENV, "correct horse battery")
    port = _free_port()
    config = uvicorn.Config(
        create_app(Settings.load(data_dir=data)), host="127.0.0.1", port=port, log_config=None, ws="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield Live(f"http://127.0.0.1:{port}", data, client_id)
    finally:
        server.should_exit = True
        await task


def _error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


async def test_init_enroll_read_login(live: Live, tmp_path: Path) -> None:
    key = tmp_path / "conf" / "authenticator.key"
    opts = ["--key-file", str(key), "--passphrase-env", PASS_ENV]
    r = await live.run("authenticator", "init", *opts)
    assert r.exit_code == 0, r.output
    assert key.stat().st_mode & 0o777 == 0o600
    assert "already exists" in _error_line(await live.run("authenticator", "init", *opts))

    r = await live.run("-d", str(live.data), "user", "enroll", "alice@example.com")
    code = enrollment_code_in(r.stdout)
    r = await live.run("authenticator", "enroll", live.url, "alice@example.com", "--code", code, *opts)
    assert r.exit_code == 0, r.output
    public_key = b64u_decode(parse_key_file(key.read_bytes()).public_key, field="public_key", length=32)
    assert f"key fingerprint {hashlib.sha256(public_key).hexdigest()[:32]}." in r.stdout
    assert "enrollment_code_invalid" in _error_line(
        await live.run("authenticator", "enroll", live.url, "alice@example.com", "--code", code, *opts)
    )

    async with httpx.AsyncClient(base_url=live.url) as http:
        verifier = secrets.token_urlsafe(48)
        body = {
            "email": "alice@example.com",
            "client_id": live.client_id,
            "origin": ORIGIN,
            "code_challenge": pkce_challenge(verifier),
        }
        captcha = (await http.post("/api/captcha", json=body)).json()
        png = tmp_path / "captcha.png"
        png.write_bytes((await http.get("/api/captcha/qr.png", params={"captcha": captcha["captcha"]})).content)

        shown = await live.run("authenticator", "read", "--image", str(png), *opts)
        assert shown.exit_code == 0, shown.output
        assert "server:  auth.example.com" in shown.stdout and "account: alice@example.com" in shown.stdout
        from_image = shown.stdout.split("code:")[1].split()[0]
        from_stdin = await live.run("authenticator", "read", "--code-only", *opts, input=captcha["captcha"] + "\n")
        from_arg = await live.run("authenticator", "read", captcha["captcha"], "--code-only", *opts)
        assert from_image == from_stdin.stdout.strip() == from_arg.stdout.strip()

        answer = {
            "captcha_id": captcha["captcha_id"],
            "code": from_image,
            "code_verifier": verifier,
            "session_key": b64u_of_public(X25519PrivateKey.generate()),
        }
        r2 = await http.post("/api/captcha/verify", json=answer)
        assert r2.status_code == 200, r2.text
        assert r2.json()["subject"] == "alice@example.com"

        # Every failure is one `error:` line and exit status 1.
        other = tmp_path / "other.key"
        assert (await live.run("authenticator", "init", "--key-file", str(other), input="pw2\npw2\n")).exit_code == 0
        assert "not encrypted to this authenticator" in _error_line(
            await live.run("authenticator", "read", captcha["captcha"], "--key-file", str(other), input="pw2\n")
        )
        wrong = await live.run("authenticator", "read", captcha["captcha"], "--key-file", str(key), input="nope\n")
        assert "wrong passphrase" in _error_line(wrong)
        assert "not a tokenward captcha" in _error_line(await live.run("authenticator", "read", "TWC1.garbage", *opts))
        junk = tmp_path / "junk.png"
        junk.write_bytes(b"\x89PNG not really")
        assert "cannot read" in _error_line(await live.run("authenticator", "read", "--image", str(junk), *opts))
        blank = tmp_path / "blank.png"
        from PIL import Image

        Image.new("L", (64, 64), 255).save(blank)
        assert "no QR code" in _error_line(await live.run("authenticator", "read", "--image", str(blank), *opts))
        key.chmod(0o644)
        assert "chmod 600" in _error_line(await live.run("authenticator", "read", captcha["captcha"], *opts))


def test_missing_image_extra_names_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zxingcpp", None)  # what an install without the extra looks like
    png = tmp_path / "qr.png"
    png.write_bytes(b"")
    result = CliRunner().invoke(cli, ["authenticator", "read", "--image", str(png), "--key-file", str(tmp_path / "k")])
    assert "pip install 'tokenward[authenticator]'" in _error_line(result)


def test_passphrase_env_must_be_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASS_ENV, raising=False)
    result = CliRunner().invoke(
        cli, ["authenticator", "init", "--key-file", str(tmp_path / "k"), "--passphrase-env", PASS_ENV]
    )
    assert PASS_ENV in _error_line(result)
    mismatch = CliRunner().invoke(
        cli, ["authenticator", "init", "--key-file", str(tmp_path / "k")], input="a\nb\na\na\n"
    )
    assert mismatch.exit_code == 0 and (tmp_path / "k").exists()


def test_read_opens_twc1_and_twc2_captchas_sealed_to_its_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASS_ENV, "correct horse battery")
    key_file = tmp_path / "authenticator.key"
    opts = ["--key-file", str(key_file), "--passphrase-env", PASS_ENV]
    assert CliRunner().invoke(cli, ["authenticator", "init", *opts]).exit_code == 0
    public = b64u_decode(parse_key_file(key_file.read_bytes()).public_key, field="public_key", length=32)
    plain = CaptchaPlaintext("A" * 22, "K7HRX", SERVER, "alice@example.com", "App", ORIGIN, int(time.time()) + 120)
    for aead, prefix in (("chacha20poly1305", "TWC1."), ("aes256gcm", "TWC2.aes256gcm.")):
        payload = seal_captcha(plain, public, aead=aead)
        assert payload.startswith(prefix)
        result = CliRunner().invoke(cli, ["authenticator", "read", payload, "--code-only", *opts])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "K7HRX"
    # A browser authenticator's captcha is sealed to its own (non-extractable) key: refused, and said so.
    browser = X25519PrivateKey.generate().public_key().public_bytes_raw()
    foreign = seal_captcha(plain, browser, aead="aes256gcm")
    result = CliRunner().invoke(cli, ["authenticator", "read", foreign, *opts])
    assert "not encrypted to this authenticator's key" in _error_line(result)


def test_read_help_names_both_captcha_formats() -> None:
    result = CliRunner().invoke(cli, ["authenticator", "read", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stdout).split())
    assert "`TWC1.…` (ChaCha20-Poly1305" in text
    assert "`TWC2.aes256gcm.…` (AES-256-GCM, the browser authenticator's format)" in text
    assert "a browser authenticator's captcha cannot be read here" in text
    assert "Key file (default: ~/.config/tokenward/authenticator.key)." in text


def test_enroll_refuses_a_server_that_recorded_another_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "authenticator.key"
    monkeypatch.setenv(PASS_ENV, "correct horse battery staple")
    opts = ["--key-file", str(key), "--passphrase-env", PASS_ENV]
    assert CliRunner().invoke(cli, ["authenticator", "init", *opts]).exit_code == 0

    def answer(url: str, **kwargs: object) -> httpx.Response:
        body = {"email": "alice@example.com", "status": "enrolled", "fingerprint": "0" * 32}
        return httpx.Response(200, json=body, request=httpx.Request("POST", url))

    monkeypatch.setattr("tokenward.cli.authenticator.httpx.post", answer)
    r = CliRunner().invoke(
        cli, ["authenticator", "enroll", "https://auth.example.com", "alice@example.com", "-c", "X", *opts]
    )
    assert r.exit_code == 1
    assert "recorded key '00000000000000000000000000000000'" in r.stderr and "do not trust" in r.stderr
