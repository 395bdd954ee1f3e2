"""Which address a request comes from, believing forwarding headers only from trusted proxies.

Regulation (bans per source address) and audit events key on the client's address. A reverse
proxy puts the address it saw in ``X-Forwarded-For`` (appended) or ``X-Real-IP``; anybody else
can write those headers too. So they are believed only when the TCP peer is one of the proxies
named in ``TOKENWARD_TRUSTED_PROXIES``, and in ``X-Forwarded-For`` only the hops that trusted
proxies appended count: the answer is the right-most hop that is not itself a trusted proxy
(RFC 7239 §5.2 explains why the left part is the client's to invent).

Pure: it takes the peer and the headers, never a request object. ``/verify``, the management
API and the portal all ask one :class:`TrustedProxies` built from the settings.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["MAX_FORWARDED_LENGTH", "IPNetwork", "TrustedProxies"]

MAX_FORWARDED_LENGTH = 1024
"""Only the last this-many characters of ``X-Forwarded-For`` are read (its right end is the trusted one)."""

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The proxies whose forwarding headers are believed, and the client-address rule built on them."""

    __slots__ = ("networks",)

    def __init__(self, networks: Iterable[IPNetwork] = ()) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(networks)

    @classmethod
    def parse(cls, values: Sequence[str]) -> TrustedProxies:
        """From addresses or networks (``10.0.0.0/8``, ``::1``); raises ``ValueError`` on a bad one."""
        return cls(ipaddress.ip_network(v.strip(), strict=False) for v in values)

    def __repr__(self) -> str:
        return f"TrustedProxies({[str(n) for n in self.networks]!r})"

    def trusts(self, address: str) -> bool:
        """Whether ``address`` (an IP in text form) is one of the trusted proxies."""
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    def client_address(self, peer: str | None, headers: Mapping[str, str]) -> str | None:
        """The client's address: the peer itself, unless the peer is a trusted proxy.

        From a trusted peer: the right-most ``X-Forwarded-For`` hop that is not a trusted proxy
        (every hop to its right was appended by a proxy we trust); if every hop is trusted, the
        left-most of them; without ``X-Forwarded-For``, a valid ``X-Real-IP``; else the peer.
        A hop that is not an IP address stops the walk: the last trusted hop before it answers.
        ``headers`` has lower-case names (ASGI).
        """
        if peer is None or not self.networks or not self.trusts(peer):
            return peer
        forwarded = headers.get("x-forwarded-for")
        if forwarded:
            nearest = peer
            for hop in reversed(forwarded[-MAX_FORWARDED_LENGTH:].split(",")):
                ip = _ip(hop.strip())
                if ip is None:
                    return nearest
                if not any(ip in network for network in self.networks):
                    return str(ip)
                nearest = str(ip)
            return nearest
        real = _ip(headers.get("x-real-ip", "").strip())
        return str(real) if real is not None else peer


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text or len(text) > 64:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
