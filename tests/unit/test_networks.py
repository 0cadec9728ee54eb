"""Subscriber addresses and the customer's address behind proxies (services/runtime/networks.py)."""

from __future__ import annotations

import pytest

from services.runtime import networks

TRUSTED = networks.trusted_networks(["10.0.0.1", "10.99.0.0/16", "2001:db8:ffff::/48"])


@pytest.mark.parametrize(
    ("remote", "forwarded", "customer"),
    [
        # not from a trusted proxy: the header is the client's own claim, ignored
        ("198.51.100.9", ["203.0.113.5"], "198.51.100.9"),
        # the proxy appended the real peer on the right; the leftmost is spoofed
        ("10.0.0.1", ["203.0.113.5, 198.51.100.9"], "198.51.100.9"),
        ("10.0.0.1", ["203.0.113.5", "198.51.100.9"], "198.51.100.9"),  # two headers
        # a chain of trusted proxies is skipped from the right
        ("10.0.0.1", ["203.0.113.5, 198.51.100.9, 10.99.1.1, 10.99.2.2"], "198.51.100.9"),
        ("2001:db8:ffff::1", ["2001:db8:1::5, 2001:db8:2::7"], "2001:db8:2::7"),
        ("::ffff:10.0.0.1", ["[2001:db8:2::7]:5555"], "2001:db8:2::7"),  # mapped, bracketed
        # every hop trusted: the first one is where the request came from
        ("10.0.0.1", ["10.99.1.1, 10.99.2.2"], "10.99.1.1"),
        ("10.0.0.1", [], "10.0.0.1"),
        # the entry the proxy vouches for is no address: nobody, not what is left of it
        ("10.0.0.1", ["203.0.113.5, garbage"], None),
        ("::ffff:198.51.100.9", [], "198.51.100.9"),
        (None, [], None),
    ],
)
def test_the_rightmost_untrusted_forwarded_address_is_the_customer(
    remote: str | None, forwarded: list[str], customer: str | None
) -> None:
    found = networks.client_address(remote, forwarded, TRUSTED)
    assert (None if found is None else str(found)) == customer


def test_a_bad_trusted_proxy_is_named() -> None:
    with pytest.raises(networks.NetworkError, match=r"'proxy\.example' is not an address"):
        networks.trusted_networks(["10.0.0.1", "proxy.example"])


def test_subscriber_networks_are_checked_per_family_and_kind() -> None:
    found = networks.subscriber_networks(
        {"ipv4": ["192.0.2.1"], "ipv6": ["2001:DB8::1"], "ipv4_prefixes": ["192.0.2.0/24"],
         "ipv6_prefixes": ["2001:db8::/48"], "logins": ["x"]}
    )  # fmt: skip
    assert found == [
        ("ipv4[0]", "192.0.2.1/32"),
        ("ipv6[0]", "2001:db8::1/128"),
        ("ipv4_prefixes[0]", "192.0.2.0/24"),
        ("ipv6_prefixes[0]", "2001:db8::/48"),
    ]
    assert networks.shown("192.0.2.1/32") == "192.0.2.1"
    assert networks.shown("2001:db8::/48") == "2001:db8::/48"
