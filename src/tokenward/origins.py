"""Origins and their app hash (docs/protocol.md §2): pure functions below every layer that needs them.

:mod:`tokenward.identity.apps` re-exports them; :mod:`tokenward.records.oidc` uses them without importing identity.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest

__all__ = ["app_hash_of_origin", "origin_host"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_host(origin: str) -> str:
    """``host[:port]`` of an origin URL (``https://App.example.com:8080/x`` → ``app.example.com:8080``).

    A bare ``host[:port]`` is accepted as is. Default ports are dropped.
    """
    text = origin.strip()
    if "://" not in text:
        text = "https://" + text if not text.startswith("//") else "https:" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise BadRequest(
            f"{origin!r} is not an origin like https://app.example.com", code=ErrorCode.ORIGIN_MALFORMED
        ) from None
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password or " " in host:
        raise BadRequest(f"{origin!r} is not an origin like https://app.example.com", code=ErrorCode.ORIGIN_MALFORMED)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or _DEFAULT_PORTS.get(parts.scheme.lower()) == port:
        return host
    return f"{host}:{port}"


def app_hash_of_origin(origin: str) -> str:
    """Uppercase SHA-512 hex of ``host[:port]`` (docs/protocol.md §2)."""
    return hashlib.sha512(origin_host(origin).encode("utf-8")).hexdigest().upper()
