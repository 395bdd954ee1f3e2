from __future__ import annotations

import pytest
from starlette.requests import Request

from tokenward.errors import ConfigError
from tokenward.settings import Settings
from tokenward.web.auth import client_ip, trusted_networks


def request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 1234)})


TRUSTED = trusted_networks(["10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("192.0.2.7", "203.0.113.9", (), "192.0.2.7"),  # no trusted proxies: the header is ignored
        ("192.0.2.7", "203.0.113.9", TRUSTED, "192.0.2.7"),  # untrusted peer: ignored
        ("10.1.2.3", "203.0.113.9", TRUSTED, "203.0.113.9"),
        ("10.1.2.3", "198.51.100.1, 203.0.113.9, 10.9.9.9", TRUSTED, "203.0.113.9"),  # spoofed left part ignored
        ("10.1.2.3", None, TRUSTED, "10.1.2.3"),
        ("::1", "10.0.0.1", TRUSTED, "::1"),  # every hop trusted: the peer
    ],
)
def test_client_ip(peer: str, forwarded: str | None, trusted: tuple[object, ...], expected: str) -> None:
    assert client_ip(request(peer, forwarded), trusted) == expected  # type: ignore[arg-type]


def test_trusted_proxies_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENWARD_TRUSTED_PROXIES", "10.0.0.0/8, ::1")
    assert Settings.load().trusted_proxies == ("10.0.0.0/8", "::1/128")
    monkeypatch.setenv("TOKENWARD_TRUSTED_PROXIES", str(("10.0.0.0/8", "::1/128")))  # as `serve --workers` exports it
    assert Settings.load().trusted_proxies == ("10.0.0.0/8", "::1/128")
    monkeypatch.setenv("TOKENWARD_TRUSTED_PROXIES", "proxy.local")
    with pytest.raises(ConfigError) as info:
        Settings.load()
    assert "TOKENWARD_TRUSTED_PROXIES" in info.value.detail
