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
import socket
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["MAX_FORWARDED_LENGTH", "IPNetwork", "TrustedProxies"]

MAX_FORWARDED_LENGTH = 1024
"""Only the last this-many characters of ``X-Forwarded-For`` are read (its right end is the trusted one)."""

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Peers whose trust is remembered (proxies are few; direct clients are many, so the memory is cleared when full).
PEER_MEMORY = 1024


class TrustedProxies:
    """The proxies whose forwarding headers are believed, and the client-address rule built on them."""

    __slots__ = ("_peers", "_v4", "networks")

    def __init__(self, networks: Iterable[IPNetwork] = ()) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(networks)
        # IPv4 networks as (address, mask) integers: a hop is matched without building an address object.
        self._v4 = tuple((int(n.network_address), int(n.netmask)) for n in self.networks if n.version == 4)
        self._peers: dict[str, bool] = {}

    @classmethod
    def parse(cls, values: Sequence[str]) -> TrustedProxies:
        """From addresses or networks (``10.0.0.0/8``, ``::1``); raises ``ValueError`` on a bad one."""
        return cls(ipaddress.ip_network(v.strip(), strict=False) for v in values)

    def __repr__(self) -> str:
        return f"TrustedProxies({[str(n) for n in self.networks]!r})"

    def trusts(self, address: str) -> bool:
        """Whether ``address`` (an IP in text form) is one of the trusted proxies."""
        trusted = self._peers.get(address)
        if trusted is None:
            hop = self._hop(address)
            trusted = hop is not None and hop[1]
            if len(self._peers) >= PEER_MEMORY:
                self._peers.clear()
            self._peers[address] = trusted
        return trusted

    def _hop(self, text: str) -> tuple[str, bool] | None:
        """``text`` as an address in canonical form and whether it is a trusted proxy; None if not an address.

        A dotted-quad IPv4 address (the usual hop) is checked with ``inet_pton``, which accepts exactly the
        canonical form ``ipaddress`` does (four decimal octets, no leading zeros), so the text is its own
        canonical form; anything else (IPv6, a scope id) goes through :mod:`ipaddress`.
        """
        try:
            packed = socket.inet_pton(socket.AF_INET, text)
        except (OSError, ValueError):
            ip = _ip(text)
            if ip is None:
                return None
            return str(ip), any(ip in network for network in self.networks)
        value = int.from_bytes(packed, "big")
        for network, mask in self._v4:  # a loop, not any(<generator>): this runs for every request's hops
            if value & mask == network:
                return text, True
        return text, False

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
            for text in reversed(forwarded[-MAX_FORWARDED_LENGTH:].split(",")):
                hop = self._hop(text.strip())
                if hop is None:
                    return nearest
                address, trusted = hop
                if not trusted:
                    return address
                nearest = address
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
