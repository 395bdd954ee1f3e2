"""One client-address rule for /verify, the API and the portal: forwarding headers only from trusted proxies."""

from __future__ import annotations

import pytest

from tokenward.clientaddr import TrustedProxies
from tokenward.errors import ConfigError
from tokenward.settings import Settings

TRUSTED = TrustedProxies.parse(["10.0.0.0/8", "::1"])
NONE = TrustedProxies()


@pytest.mark.parametrize(
    ("peer", "headers", "proxies", "expected"),
    [
        ("192.0.2.7", {"x-forwarded-for": "203.0.113.9"}, NONE, "192.0.2.7"),  # no trusted proxies: ignored
        ("192.0.2.7", {"x-forwarded-for": "203.0.113.9"}, TRUSTED, "192.0.2.7"),  # untrusted peer: ignored
        ("192.0.2.7", {"x-real-ip": "127.0.0.1"}, TRUSTED, "192.0.2.7"),  # X-Real-IP likewise
        ("10.1.2.3", {"x-forwarded-for": "203.0.113.9"}, TRUSTED, "203.0.113.9"),
        ("10.1.2.3", {"x-forwarded-for": "198.51.100.1, 203.0.113.9, 10.9.9.9"}, TRUSTED, "203.0.113.9"),
        ("10.1.2.3", {}, TRUSTED, "10.1.2.3"),
        ("::1", {"x-forwarded-for": "10.0.0.1"}, TRUSTED, "10.0.0.1"),  # every hop trusted: the left-most
        ("10.1.2.3", {"x-real-ip": "203.0.113.5"}, TRUSTED, "203.0.113.5"),
        ("10.1.2.3", {"x-real-ip": "not-an-ip"}, TRUSTED, "10.1.2.3"),
        ("10.1.2.3", {"x-forwarded-for": "203.0.113.9, junk"}, TRUSTED, "10.1.2.3"),  # junk stops the walk
        ("10.1.2.3", {"x-forwarded-for": "2001:DB8::0001"}, TRUSTED, "2001:db8::1"),  # normalised
        (None, {"x-forwarded-for": "203.0.113.9"}, TRUSTED, None),
        ("10.1.2.3", {"x-forwarded-for": "1.1.1.1," * 2000 + "203.0.113.9"}, TRUSTED, "203.0.113.9"),
    ],
)
def test_client_address(peer: str | None, headers: dict[str, str], proxies: TrustedProxies, expected: str) -> None:
    assert proxies.client_address(peer, headers) == expected


def test_trusted_proxies_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENWARD_TRUSTED_PROXIES", "10.0.0.0/8, ::1")
    assert Settings.load().trusted_proxies == ("10.0.0.0/8", "::1/128")
    assert TrustedProxies.parse(Settings.load().trusted_proxies).trusts("::1")
    monkeypatch.setenv("TOKENWARD_TRUSTED_PROXIES", str(("10.0.0.0/8", "::1/128")))  # as `serve --workers` exports it
    assert Settings.load().trusted_proxies == ("10.0.0.0/8", "::1/128")
    monkeypatch.setenv("TOKENWARD_TRUSTED_PROXIES", "proxy.local")
    with pytest.raises(ConfigError) as info:
        Settings.load()
    assert "TOKENWARD_TRUSTED_PROXIES" in info.value.detail
