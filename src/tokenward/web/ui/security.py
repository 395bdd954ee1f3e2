"""Browser security for the portal: CSRF tokens, the sealed login state, cookies, safe returns, headers.

Decide first, act second: everything here is a pure function of its inputs (keys, ``now`` and
randomness are passed in); the page handlers in :mod:`tokenward.web.ui.pages` do the I/O.

- **CSRF** is a signed double-submit token (OWASP): a random nonce lives in an HttpOnly,
  ``SameSite=Strict`` cookie; every form carries ``kid.HMAC(csrf_key, nonce | SHA-256(session cookie))``,
  so a planted cookie/token pair fails beside another session. A forged or
  stale token, or a missing cookie, is refused before the form is read any further.
- **Login state** between "send me a captcha" and "here is the code" (captcha id, PKCE
  verifier, e-mail, return URL, payload for redrawing the QR) is sealed with
  ChaCha20-Poly1305 under the ``session-cookie`` key, so neither the browser nor a proxy log
  learns the verifier.
- **Safe return** (``rd``): relative paths, or http(s) URLs whose host is on the allow-list.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Forbidden
from tokenward.keys import Keyring, Purpose

__all__ = [
    "CSP",
    "CSRF_COOKIE",
    "LOGIN_COOKIE",
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "LoginState",
    "check_csrf",
    "csrf_token",
    "open_login_state",
    "safe_return",
    "seal_login_state",
]

SESSION_COOKIE = "tokenward_session"
LOGIN_COOKIE = "tokenward_login"
CSRF_COOKIE = "tokenward_csrf"
LOGIN_STATE_TTL = 600
_LOGIN_AAD = b"tokenward/v1/ui-login-state"

CSP = "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # rd and captcha pages must not leak through Referer
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- CSRF ---------------------------------------------------------------------------------------


def _csrf_mac(key: bytes, nonce: str, session: str | None) -> str:
    # The session enters as a digest: the MAC input stays short whatever the cookie holds.
    bound = hashlib.sha256((session or "").encode("ascii", "replace")).digest()
    message = b"csrf|" + nonce.encode("ascii", "replace") + b"|" + bound
    return _b64u(hmac.new(key, message, hashlib.sha256).digest())


def csrf_token(keyring: Keyring, nonce: str, session: str | None = None) -> str:
    """The form token for the browser's CSRF cookie ``nonce`` and session cookie ``session``: ``kid.mac``.

    Bound to the session as well as the nonce: a cookie/token pair an attacker obtained for
    himself (and planted in the victim's browser, e.g. from a sibling subdomain) does not
    validate next to the victim's session cookie.
    """
    kid, key = keyring.key(Purpose.CSRF)
    return f"{kid}.{_csrf_mac(key.reveal(), nonce, session)}"


def check_csrf(keyring: Keyring, nonce: str | None, token: str | None, *, session: str | None, now: float) -> None:
    """403 ``csrf_invalid`` unless ``token`` is this cookie nonce's and this session's token under a current or
    previous key."""
    if not nonce or not token or len(token) > 200 or len(nonce) > 100:
        raise Forbidden(
            "the form's security token is missing; reload the page and try again", code=ErrorCode.CSRF_INVALID
        )
    kid, _, mac = token.partition(".")
    key = keyring.key_by_id(Purpose.CSRF, kid, now=now)
    if key is None or not hmac.compare_digest(mac.encode(), _csrf_mac(key.reveal(), nonce, session).encode()):
        raise Forbidden(
            "the form's security token is not valid; reload the page and try again", code=ErrorCode.CSRF_INVALID
        )


# -- login state --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginState:
    """What the portal remembers between the captcha request and the code."""

    captcha_id: str
    verifier: str
    email: str
    rd: str
    payload: str
    scopes: tuple[str, ...]
    expires_at: int


def seal_login_state(keyring: Keyring, state: LoginState, *, nonce: bytes) -> str:
    kid, key = keyring.key(Purpose.SESSION_COOKIE)
    body = json.dumps(asdict(state), separators=(",", ":")).encode()
    sealed = ChaCha20Poly1305(key.reveal()).encrypt(nonce, body, _LOGIN_AAD + kid.encode())
    return f"{kid}.{_b64u(nonce + sealed)}"


def open_login_state(keyring: Keyring, text: str | None, *, now: float | None = None) -> LoginState | None:
    """The sealed state, or ``None`` when missing, tampered with, under an unknown key or expired."""
    now = time.time() if now is None else now
    if not text or len(text) > 4000:
        return None
    kid, _, rest = text.partition(".")
    key = keyring.key_by_id(Purpose.SESSION_COOKIE, kid, now=now)
    if key is None:
        return None
    try:
        raw = _unb64u(rest)
        body = ChaCha20Poly1305(key.reveal()).decrypt(raw[:12], raw[12:], _LOGIN_AAD + kid.encode())
        data = json.loads(body)
        state = LoginState(**{**data, "scopes": tuple(data["scopes"])})
    except (InvalidTag, ValueError, TypeError, KeyError):
        return None
    return state if state.expires_at > now else None


# -- safe return --------------------------------------------------------------------------------


def _host_allowed(host: str, allowed: Sequence[str]) -> bool:
    for entry in allowed:
        entry = entry.lower().strip()
        if entry.startswith("*."):
            entry = entry[1:]
        if entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


def safe_return(rd: str | None, allowed: Sequence[str], *, default: str = "/account/tokens") -> str:
    """``rd`` when it is safe to send the browser there after sign-in, else ``default``.

    Safe: a path on this server (``/…`` but not ``//…`` or ``/\\…``), or an ``http``/``https``
    URL without user info whose host is in ``allowed`` (``example.com`` exactly;
    ``.example.com`` or ``*.example.com`` for it and its subdomains). Everything else — other
    schemes (``javascript:``, ``data:``), foreign hosts, control characters — gives ``default``.
    """
    if not rd or len(rd) > 2000 or any(ord(c) < 33 or c == "\\" or ord(c) == 127 for c in rd):
        return default
    if rd.startswith("/") and not rd.startswith("//"):
        return rd
    try:
        parts = urlsplit(rd)
        host = (parts.hostname or "").lower()
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        return default
    if parts.scheme not in ("http", "https") or not host or "@" in parts.netloc or not port_ok:
        return default
    return rd if _host_allowed(host, allowed) else default
