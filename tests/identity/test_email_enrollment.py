"""E-mail enrolment through a real SMTP server (aiosmtpd on loopback), then enrolment with the mailed code."""

from __future__ import annotations

import email
import hashlib
import re
import socket
from collections.abc import AsyncIterator, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.helpers import clear_tokenward_env, init_data_dir
from tests.identity.helpers import SERVER, write_policies
from tokenward.identity.client_tokens import b64u_of_public
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.storage import Database
from tokenward.storage.audit import SqlAuditLog
from tokenward.storage.identity import SqlIdentityStore
from tokenward.web.app import create_app

CODE = re.compile(r"\b([0-9A-F]{8}-[0-9A-F]{8}-[0-9A-F]{8}-[0-9A-F]{8})\b")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.recipients: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.recipients.extend(envelope.rcpt_tos)
        content = envelope.original_content or b""
        self.messages.append(email.message_from_bytes(content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def _app(tmp_path: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    data = tmp_path / "data"
    if not data.exists():
        init_data_dir(data, SERVER)
        write_policies(data, "C" * 40)
    config = Settings.load(data_dir=data, **settings)
    runtime = await open_runtime(config)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(config, runtime=runtime)), base_url="http://t"
    )
    try:
        yield client
    finally:
        await client.aclose()
        await runtime.close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_tokenward_env(monkeypatch)


async def test_code_by_email_enrols_and_answers_alike(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    async for http in _app(tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False):
        r = await http.post("/api/enroll/email", json={"email": "Alice@Example.com"})
        assert r.status_code == 202, r.text
        allowed_answer = r.json()
        assert inbox.recipients == ["alice@example.com"]
        mail = inbox.messages[0]
        assert mail["From"] == f"tokenward@{SERVER}" and "enrolment code" in str(mail["Subject"])
        body = mail.get_payload(decode=True)
        assert isinstance(body, bytes)
        match = CODE.search(body.decode())
        assert match is not None
        code = match.group(1)

        # mallory's captcha is denied by policy: the same answer, and no mail is sent.
        r = await http.post("/api/enroll/email", json={"email": "mallory@example.com"})
        assert r.status_code == 202 and r.json() == allowed_answer
        r = await http.post("/api/enroll/email", json={"email": "eve@elsewhere.org"})
        assert r.status_code == 202 and r.json() == allowed_answer
        assert len(inbox.messages) == 1

        private = X25519PrivateKey.generate()
        key = b64u_of_public(private)
        r = await http.post("/api/enroll", json={"email": "alice@example.com", "code": code, "public_key": key})
        assert r.status_code == 200, r.text
        fingerprint = hashlib.sha256(private.public_key().public_bytes_raw()).hexdigest()[:32]
        assert r.json() == {"email": "alice@example.com", "status": "enrolled", "fingerprint": fingerprint}
        r = await http.post("/api/enroll", json={"email": "alice@example.com", "code": code, "public_key": key})
        assert r.json()["error"] == "enrollment_code_invalid"  # single use

        r = await http.post("/api/enroll/email", json={"email": "not an address"})
        assert r.status_code == 400 and r.json()["error"] == "email_invalid"

    # The mailed code made an "email-code" enrolment, and the audit log says so.
    async with Database.connect(Settings.load(data_dir=tmp_path / "data").database_url_or_default) as db:
        enrollment = await SqlIdentityStore(db).get_enrollment("alice@example.com")
        assert enrollment is not None and enrollment.method == "email-code"
        audit = SqlAuditLog(db)
        [issued] = await audit.list(action="enrollment.code_issued")
        assert (issued.actor, issued.subject, issued.detail) == ("email", "alice@example.com", {"method": "email-code"})
        [completed] = await audit.list(action="enrollment.completed")
        assert completed.subject == "alice@example.com"
        assert completed.detail == {"method": "email-code", "aead": "chacha20poly1305"}


async def test_enrolment_emails_are_rate_limited(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    async for http in _app(
        tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, captcha_max_requests=2
    ):
        for _ in range(2):
            assert (await http.post("/api/enroll/email", json={"email": "alice@example.com"})).status_code == 202
        r = await http.post("/api/enroll/email", json={"email": "alice@example.com"})
        assert r.status_code == 429 and r.json()["error"] == "enrollment_rate_limited"
        assert "Retry-After" in r.headers
        assert len(inbox.messages) == 2


async def test_not_configured_and_unreachable_are_503(tmp_path: Path) -> None:
    async for http in _app(tmp_path):
        r = await http.post("/api/enroll/email", json={"email": "alice@example.com"})
        assert r.status_code == 503 and r.json()["error"] == "smtp_not_configured"
    closed = _free_port()
    settings = {"smtp_host": "127.0.0.1", "smtp_port": closed, "smtp_starttls": False, "smtp_timeout_seconds": 2.0}
    async for http in _app(tmp_path, **settings):
        for address in ("alice@example.com", "mallory@example.com"):  # the same for both: no enumeration
            r = await http.post("/api/enroll/email", json={"email": address})
            assert r.status_code == 503 and r.json()["error"] == "smtp_unavailable"
            assert address not in r.json()["detail"]


def test_password_never_in_repr() -> None:
    from pydantic import SecretStr

    from tokenward.identity.mail import SmtpMailer

    mailer = SmtpMailer(host="h", port=25, sender="s@h", username="u", password=SecretStr("hunter2"))
    assert "hunter2" not in repr(mailer)
    assert "hunter2" not in repr(Settings.load(data_dir=Path("/nonexistent"), smtp_password="hunter2"))
