"""One system login, decided: map the unix user, ask the server, fail closed, log one line.

Both PAM entry points call :func:`password_login` (the code typed at the password prompt, no
captcha id) or :func:`conversation_login` (a host-made captcha shown, then the code asked for).
Each server exchange runs in a worker thread that the caller stops waiting for at the
configured timeout, so a server that accepts the connection and never answers cannot hang the
login. Every outcome is one line in the auth log (syslog ``authpriv``, and ``log_file`` if set);
no code and no key material is ever written there.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .client import Refused, ServerClient, Unreachable
from .config import ConfigProblem, HostConfig, address_for

__all__ = ["SYSLOG_ADDRESS", "Outcome", "Prompt", "conversation_login", "log_line", "password_login"]

#: The local syslog socket. Written to directly: ``syslog.openlog`` would rename the whole process's
#: log lines (sshd's own included, pam_python runs inside it).
SYSLOG_ADDRESS = "/dev/log"

T = TypeVar("T")

#: ``prompt(text, lines)``: show ``lines`` to the user, then ask ``text`` and return the answer
#: (None when the user gave none). Supplied by the PAM entry point.
Prompt = Callable[[str, list[str]], "str | None"]

#: Granted, refused by the server or the configuration, or the server could not be asked.
GRANTED, REFUSED, UNAVAILABLE, UNKNOWN_USER = "granted", "refused", "unavailable", "unknown-user"


@dataclass(frozen=True)
class Outcome:
    result: str
    reason: str

    @property
    def ok(self) -> bool:
        return self.result == GRANTED


class _Deadline:
    """Runs each server exchange in a daemon thread and gives up at the deadline (fail closed)."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config

    def run(self, work: Callable[[ServerClient], T], client: ServerClient) -> T:
        box: dict[str, object] = {}

        def target() -> None:
            try:
                box["value"] = work(client)
            except BaseException as exc:  # handed to the waiting thread below
                box["error"] = exc

        client.deadline = time.monotonic() + self.config.timeout
        worker = threading.Thread(target=target, name="tokenward-pam", daemon=True)
        worker.start()
        worker.join(self.config.timeout + 0.5)
        if worker.is_alive():
            raise Unreachable(f"no answer within {self.config.timeout:g} s")
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["value"]  # type: ignore[return-value]


#: RFC 3164 priority: facility authpriv (10) * 8 + severity warning (4) or info (6).
_AUTHPRIV_WARNING, _AUTHPRIV_INFO = 10 * 8 + 4, 10 * 8 + 6


def _syslog(line: str, *, warning: bool, address: str) -> None:
    """One datagram to the local syslog socket; silently nothing when there is none (a container)."""
    priority = _AUTHPRIV_WARNING if warning else _AUTHPRIV_INFO
    message = f"<{priority}>tokenward-pam[{os.getpid()}]: {line}".encode("utf-8", "replace")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            sock.connect(address)
            sock.send(message[:8192])
    except OSError:
        pass


def log_line(
    config: HostConfig | None,
    unix_user: str,
    address: str | None,
    outcome: Outcome,
    remote: str | None,
    *,
    syslog_address: str = SYSLOG_ADDRESS,
) -> str:
    """Write the one auth-log line of this login (syslog ``authpriv``, and ``log_file``) and return it."""
    host = config.host if config is not None else "?"
    line = (
        f"{outcome.result} unix user {unix_user!r}"
        f" (address {address or '-'}) on host {host} from {remote or '-'}: {outcome.reason}"
    )
    _syslog(line, warning=not outcome.ok, address=syslog_address)
    line = "tokenward-pam: " + line
    if config is not None and config.log_file is not None:
        try:
            with open(config.log_file, "a", encoding="utf-8") as handle:
                handle.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + line + "\n")
        except OSError:
            pass
    return line


def _decide(
    config: HostConfig, unix_user: str, remote: str | None, steps: Callable[[_Deadline, ServerClient, str], str]
) -> tuple[Outcome, str | None]:
    try:
        address = address_for(unix_user, config)
    except ConfigProblem as exc:
        return Outcome(UNAVAILABLE, f"configuration: {exc}"), None
    if address is None:
        return Outcome(UNKNOWN_USER, "no e-mail address for this unix user (users_file, default_mapping)"), None
    client = ServerClient(config, deadline=time.monotonic() + config.timeout)
    try:
        return Outcome(GRANTED, steps(_Deadline(config), client, address)), address
    except Refused as exc:
        return Outcome(REFUSED, f"server refused: {exc.code}: {exc.detail}"), address
    except Unreachable as exc:
        return Outcome(UNAVAILABLE, f"server {config.server} unreachable: {exc}"), address
    except ConfigProblem as exc:
        return Outcome(UNAVAILABLE, f"configuration: {exc}"), address
    except Exception as exc:  # fail closed on anything unforeseen, and say what it was
        return Outcome(UNAVAILABLE, f"internal error: {type(exc).__name__}"), address


def password_login(config: HostConfig, unix_user: str, code: str, remote: str | None) -> Outcome:
    """The original flow: ``code`` was typed at the password prompt; the user made the captcha beforehand."""

    def steps(deadline: _Deadline, client: ServerClient, address: str) -> str:
        if not code.strip():
            raise Refused(401, "no_code", "no code was typed")

        def work(c: ServerClient) -> None:
            c.verify(address, code, None, remote)

        deadline.run(work, client)
        return "code accepted"

    outcome, address = _decide(config, unix_user, remote, steps)
    log_line(config, unix_user, address, outcome, remote)
    return outcome


def conversation_login(
    config: HostConfig, unix_user: str, remote: str | None, prompt: Prompt, qr: Callable[[str], list[str]]
) -> Outcome:
    """The PAM conversation: ask the server for a captcha, show it (text and QR), ask for the code, check it."""

    def steps(deadline: _Deadline, client: ServerClient, address: str) -> str:
        def ask(c: ServerClient) -> dict[str, object]:
            return c.captcha(address, remote)

        issued = deadline.run(ask, client)
        payload = str(issued["captcha"])
        lines = [
            f"tokenward: a captcha for {address} to log in to {config.host}.",
            "Scan the QR code (or copy the text) with your authenticator:",
            *qr(payload),
            payload,
        ]
        answer = prompt("Code: ", lines)
        if answer is None or not answer.strip():
            raise Refused(401, "no_code", "no code was typed")
        captcha_id = str(issued["captcha_id"])
        deadline.run(lambda c: c.verify(address, answer, captcha_id, remote), client)
        return "code accepted"

    outcome, address = _decide(config, unix_user, remote, steps)
    log_line(config, unix_user, address, outcome, remote)
    return outcome
