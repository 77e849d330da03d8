"""A click's client address behind proxies: X-Forwarded-For believed only as far as trusted proxies wrote it."""

from __future__ import annotations

import pytest

from gateway.domain.client_address import client_address, parse_networks
from gateway.settings import LinkSettings

LOCAL = parse_networks(["127.0.0.0/8", "::1/128"])
INGRESS = parse_networks(["10.0.0.0/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "client"),
    [
        ("203.0.113.7", "198.51.100.1", LOCAL, "203.0.113.7"),  # not a proxy: the header is the client's own word
        ("127.0.0.1", "198.51.100.1", LOCAL, "198.51.100.1"),  # the local proxy heard from 198.51.100.1
        ("127.0.0.1", "", LOCAL, "127.0.0.1"),
        # A client writing its own header is still counted at the address the proxy heard from.
        ("127.0.0.1", "1.2.3.4, 198.51.100.1", LOCAL, "198.51.100.1"),
        ("10.1.2.3", "1.2.3.4, 198.51.100.1, 10.9.9.9", INGRESS, "198.51.100.1"),  # two trusted hops
        ("10.1.2.3", "10.2.2.2, 10.3.3.3", INGRESS, "10.2.2.2"),  # only proxies: the first of them
        ("127.0.0.1", "198.51.100.1", (), "127.0.0.1"),  # nothing trusted: the connection only
        ("::1", "2001:db8::5", LOCAL, "2001:db8::5"),
        ("127.0.0.1", "not-an-address", LOCAL, "not-an-address"),
    ],
)
def test_the_client_is_the_first_hop_no_trusted_proxy_wrote(
    peer: str, forwarded_for: str, trusted: tuple[object, ...], client: str
) -> None:
    assert client_address(peer, forwarded_for, trusted) == client  # type: ignore[arg-type]


def test_a_trusted_proxy_that_is_not_an_address_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        LinkSettings(trusted_proxies=("10.0.0.0/33",))
