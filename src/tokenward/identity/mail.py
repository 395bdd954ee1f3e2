"""E-mail enrolment codes: the message (pure) and the SMTP sender, the only I/O here (docs/sessions.md).

:class:`SmtpMailer` runs :mod:`smtplib` in a worker thread with a bounded timeout. ``send(None)``
opens, greets, authenticates and ``NOOP``s without sending: the endpoint calls it for addresses
that may not enrol, so both answers cost the same round trip and an unreachable server gives the
same 503 for every address (no enumeration through errors).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from pydantic import SecretStr

from tokenward.errorcodes import ErrorCode
from tokenward.errors import ServiceUnavailable

__all__ = ["Mailer", "SmtpMailer", "enrollment_message"]


class Mailer(Protocol):
    async def send(self, message: EmailMessage | None) -> None:
        """Deliver ``message`` (None: only check the server accepts us); raise ``smtp_unavailable``."""
        ...


def enrollment_message(*, server: str, sender: str, to: str, code: str, valid_hours: int, now: float) -> EmailMessage:
    """The enrolment e-mail. The code is the same kind ``tokenward user enroll`` prints."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"Your {server} enrolment code"
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = make_msgid(domain=server)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    message.set_content(
        f"Someone (hopefully you) asked to enrol an authenticator for {to} on {server}.\n\n"
        f"One-time enrolment code (valid {valid_hours} h, single use):\n\n    {code}\n\n"
        f"With the reference authenticator:\n\n"
        f"    tokenward authenticator enroll https://{server} {to} --code {code}\n\n"
        "If you did not ask for this, ignore this message: the code does nothing on its own.\n"
    )
    return message


@dataclass(frozen=True)
class SmtpMailer:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    starttls: bool = True
    timeout: float = 10.0

    async def send(self, message: EmailMessage | None) -> None:
        await asyncio.to_thread(self._converse, message)

    def _converse(self, message: EmailMessage | None) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password.get_secret_value() if self.password else "")
                if message is None:
                    smtp.noop()
                else:
                    smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:  # SMTPException is an OSError; both named for the reader
            # Only the exception's class: server replies can echo the login or the recipient.
            raise ServiceUnavailable(
                f"the mail server {self.host}:{self.port} cannot be reached or refused us ({type(exc).__name__}); "
                "try again later",
                code=ErrorCode.SMTP_UNAVAILABLE,
            ) from None
