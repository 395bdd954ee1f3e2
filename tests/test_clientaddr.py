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


HOPS = [
    "203.0.113.9",
    "10.255.255.255",
    "11.0.0.0",
    "172.16.5.4",
    "172.32.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "01.2.3.4",  # leading zero: not an address to either parser
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "0x1.2.3.4",
    "1.2.3.4/32",
    "1.2.3.4\x00",
    "१.2.3.4",
    "::1",
    "::ffff:10.0.0.1",
    "2001:DB8::0001",
    "fe80::1%eth0",
    "",
    "x" * 80,
]


@pytest.mark.parametrize("hop", HOPS)
def test_fast_ipv4_path_answers_as_ipaddress_does(hop: str) -> None:
    """The dotted-quad shortcut (``inet_pton`` and integer masks) and :mod:`ipaddress` agree on every hop:
    whether it is an address, its canonical form, and whether it is trusted (``/12`` is not octet-aligned)."""
    import ipaddress

    proxies = TrustedProxies.parse(["10.0.0.0/8", "172.16.0.0/12", "::1", "::ffff:10.0.0.0/104"])
    try:
        ip = ipaddress.ip_address(hop) if hop and len(hop) <= 64 else None
    except ValueError:
        ip = None
    expected = None if ip is None else (str(ip), any(ip in n for n in proxies.networks))
    assert proxies._hop(hop) == expected
    assert proxies.client_address("10.0.0.1", {"x-forwarded-for": hop}) == ("10.0.0.1" if ip is None else str(ip))


def test_peer_trust_is_remembered_within_a_bound() -> None:
    """Trust per peer is remembered, but a flood of distinct direct clients cannot grow that memory."""
    from tokenward.clientaddr import PEER_MEMORY

    proxies = TrustedProxies.parse(["10.0.0.0/8"])
    for i in range(PEER_MEMORY * 3):
        assert not proxies.trusts(f"192.0.{i // 256 % 256}.{i % 256}")
        assert len(proxies._peers) <= PEER_MEMORY
    assert proxies.trusts("10.1.2.3") and proxies.trusts("10.1.2.3")
    assert not proxies.trusts("not an address")
