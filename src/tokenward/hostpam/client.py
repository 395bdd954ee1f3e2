"""The host's HTTP client: machine login with the host key, then the system-login calls.

Standard library HTTP (``urllib``) so that nothing beyond Debian's python3 is needed at login.
Every call gets the time left before the caller's deadline as its socket timeout; the caller
(:mod:`.flow`) also stops waiting at the deadline, whatever a slow server does.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import stat
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .config import ConfigProblem, HostConfig, read_key

__all__ = [
    "MAX_ANSWER",
    "SESSION_ERRORS",
    "Refused",
    "ServerClient",
    "SessionCache",
    "Unreachable",
    "b64u",
    "login_message",
]

#: Answers are small JSON documents; anything longer is refused unread.
MAX_ANSWER = 64 * 1024
#: A 401 with one of these codes means the host's (cached) session is no longer good: log in again, once.
SESSION_ERRORS = frozenset(
    {
        "session_revoked",
        "source_identifier_expired",
        "source_identifier_malformed",
        "source_identifier_tampered",
        "timecode_mismatch",
    }
)
_MAX_TOKEN = 4096


class SessionCache:
    """The host's source identifier kept in one root-only file, so a login costs two requests, not four.

    Read only when it is a regular file owned by this user with no group/other permission; written
    atomically (a private temporary file renamed over it). Any problem just means logging in again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> str | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
                return None
            token = os.read(fd, _MAX_TOKEN + 1).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
        return token if token.startswith("tw1si.") and len(token) <= _MAX_TOKEN else None

    def write(self, token: str) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, token.encode("ascii"))
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
        except OSError:
            pass  # no cache: the next login logs in again

    def clear(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass


class Unreachable(Exception):
    """No usable answer from the server (network, TLS, timeout, not JSON)."""


class Refused(Exception):
    """The server answered with an error: its machine-readable ``code`` and its sentence."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def login_message(*, server: str, challenge_id: str, challenge: str, client_id: str, session_key: str) -> bytes:
    """What the host signs (docs/protocol.md §8; tokenward.identity.resources.login_message)."""
    return f"tokenward/v1/resource-login|{server}|{challenge_id}|{challenge}|{client_id}|{session_key}".encode()


class ServerClient:
    """One login's conversation with the server, bounded by ``deadline`` (a ``time.monotonic()`` value)."""

    def __init__(self, config: HostConfig, *, deadline: float) -> None:
        self.config = config
        self.deadline = deadline
        self.token: str | None = None
        self.cache = SessionCache(config.session_cache) if config.session_cache is not None else None
        self._tls: ssl.SSLContext | None = None
        if config.server.startswith("https://"):  # loading the CA store is not free; plain http needs none
            self._tls = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)

    def _post(self, path: str, body: dict[str, Any], *, auth: bool = False) -> dict[str, Any]:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Unreachable(f"no answer within {self.config.timeout:g} s")
        headers = {"content-type": "application/json", "accept": "application/json"}
        if auth and self.token:
            headers["authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.config.server + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=left, context=self._tls) as response:
                return _json(response.read(MAX_ANSWER + 1), response.status)
        except urllib.error.HTTPError as exc:
            answer = _json(exc.read(MAX_ANSWER + 1), exc.code)
            raise Refused(exc.code, str(answer.get("error", "")), str(answer.get("detail", ""))[:200]) from None
        except (OSError, ValueError) as exc:  # URLError, timeouts and TLS errors are OSErrors
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise Unreachable(f"no answer within {self.config.timeout:g} s") from None
            raise Unreachable(f"{type(reason).__name__}: {str(reason)[:120]}") from None

    def login(self) -> None:
        """Machine login with the host's Ed25519 key: a ``resource`` session for the next calls."""
        # Imported here: a login with a cached session never signs, and cryptography costs ~100 ms to import.
        try:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
        except ImportError:
            raise ConfigProblem(
                f"{sys.executable} has no cryptography module: apt-get install python3-cryptography"
            ) from None

        try:
            key = serialization.load_pem_private_key(read_key(self.config.key_file), password=None)
        except ValueError:
            raise Unreachable(f"{self.config.key_file} is not a PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise Unreachable(f"{self.config.key_file} is not an Ed25519 key")
        challenge = self._post(
            "/api/resource/challenge", {"resource": self.config.host, "client_id": self.config.client_id}
        )
        session_key = b64u(
            X25519PrivateKey.generate()
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        message = login_message(
            server=self.config.server_name,
            challenge_id=str(challenge["challenge_id"]),
            challenge=str(challenge["challenge"]),
            client_id=self.config.client_id,
            session_key=session_key,
        )
        answer = self._post(
            "/api/resource/login",
            {
                "challenge_id": challenge["challenge_id"],
                "challenge": challenge["challenge"],
                "signature": b64u(key.sign(message)),
                "session_key": session_key,
            },
        )
        self.token = str(answer["source_identifier"])

    def _fresh_session(self) -> None:
        self.login()
        if self.cache is not None and self.token:
            self.cache.write(self.token)

    def _as_host(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A call with the host's session: the cached one if any, else a fresh login; a stale one is replaced once."""
        cached = False
        if self.token is None and self.cache is not None:
            self.token = self.cache.read()
            cached = self.token is not None
        if self.token is None:
            self._fresh_session()
        try:
            return self._post(path, body, auth=True)
        except Refused as exc:
            if not (cached and exc.status == 401 and exc.code in SESSION_ERRORS):
                raise
        if self.cache is not None:
            self.cache.clear()
        self._fresh_session()
        return self._post(path, body, auth=True)

    def captcha(self, user: str, remote: str | None) -> dict[str, Any]:
        """A captcha for ``user`` on this host: ``{"captcha_id", "captcha", "expires_at"}``."""
        return self._as_host("/api/system-login/captcha", {"user": user, "remote": _remote(remote)})

    def verify(self, user: str, code: str, captcha_id: str | None, remote: str | None) -> None:
        """Return when the server accepts ``code``; raise :class:`Refused` otherwise."""
        body = {"user": user, "code": code[:64], "captcha_id": captcha_id, "remote": _remote(remote)}
        answer = self._as_host("/api/system-login/verify", body)
        if answer.get("status") != "allowed":
            raise Refused(200, "unexpected_answer", "the server did not say allowed")


def _remote(remote: str | None) -> str | None:
    """PAM_RHOST as the server takes it (at most 255 characters): a long name must not turn into a refusal."""
    return remote[:255] if remote else None


def _json(data: bytes, status: int) -> dict[str, Any]:
    if len(data) > MAX_ANSWER:
        raise Unreachable(f"answer too large (HTTP {status})")
    try:
        value = json.loads(data)
    except ValueError:
        raise Unreachable(f"answer is not JSON (HTTP {status})") from None
    if not isinstance(value, dict):
        raise Unreachable(f"answer is not a JSON object (HTTP {status})")
    return value
