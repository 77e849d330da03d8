"""Which address a request came from when proxies stand in front of the gateway. Pure.

X-Forwarded-For is a list anyone can write: a client sends whatever it likes, and each proxy on
the way appends the address it heard from. Only the hops appended by proxies the operator trusts
say anything, so the client is the right-most hop that is not one of them; a peer that is not a
trusted proxy is the client itself, whatever the header says.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """Raises ValueError naming the first entry that is not an address or CIDR block."""
    return tuple(ip_network(cidr, strict=False) for cidr in cidrs)


def is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)


def client_address(peer: str, forwarded_for: str, trusted: Sequence[Network]) -> str:
    """The address to count a request against: `peer` (the connection's address) unless it is a
    trusted proxy, then the right-most X-Forwarded-For hop that is not one (the left-most if all are)."""
    if not forwarded_for or not trusted or not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer
