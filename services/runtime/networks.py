"""Subscriber addresses and prefixes, and the address a request comes from (pure: no I/O).

A contract names its customer's addresses (``ipv4``, ``ipv6``) and prefixes
(``ipv4_prefixes``, ``ipv6_prefixes``); each is one network here, an address being a
network of one (/32, /128). Contracts loading refuses two contracts whose networks overlap
(services/invoicing/address_overlaps.py); the notice page finds a customer by the longest
network holding the request's address (provisioning's ``access_networks``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

# field of Subscribers -> (IP version, a prefix rather than one address)
FIELDS: dict[str, tuple[int, bool]] = {
    "ipv4": (4, False),
    "ipv6": (6, False),
    "ipv4_prefixes": (4, True),
    "ipv6_prefixes": (6, True),
}


class NetworkError(ValueError):
    """An address or prefix that is not one; the message names the field and entry."""


_ADDRESS = {4: IPv4Address, 6: IPv6Address}
_NETWORK = {4: IPv4Network, 6: IPv6Network}
_EXAMPLE = {
    (4, False): "address like 192.0.2.1",
    (4, True): "prefix like 192.0.2.0/24",
    (6, False): "address like 2001:db8::1",
    (6, True): "prefix like 2001:db8::/48",
}


def parse(field: str, index: int, value: object) -> str:
    """One entry of a subscriber field (``ipv4[0]``) as a network in PostgreSQL's ``cidr``
    form (an address with /32 or /128), or NetworkError saying what was expected: the
    field's family, a prefix without host bits. (The family's own class parses: a quarter
    of the time ``ip_network`` takes, for a million contracts' addresses.)"""
    version, prefix = FIELDS[field]
    expected = f"{field}[{index}]: expected an IPv{version} {_EXAMPLE[version, prefix]}"
    if not isinstance(value, str):
        raise NetworkError(f"{expected}, got {value!r}")
    text = value.strip()
    try:
        if not prefix:
            return f"{_ADDRESS[version](text)}/{32 if version == 4 else 128}"
        if "/" in text:
            return str(_NETWORK[version](text))
    except ValueError as exc:
        if prefix and "has host bits set" in str(exc):
            network = _NETWORK[version](text, strict=False)
            raise NetworkError(
                f"{expected}: {value!r} has host bits set (the network is {network})"
            ) from None
    try:
        other = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise NetworkError(f"{expected}, got {value!r}") from None
    kind = "prefix" if "/" in text else "address"
    raise NetworkError(f"{expected}, got an IPv{other.version} {kind} {value!r}")


def subscriber_networks(subscribers: Mapping[str, Iterable[object]]) -> list[tuple[str, str]]:
    """Every address and prefix of a contract's subscribers as ``(field[i], network)``;
    NetworkError at the first that is not one."""
    found: list[tuple[str, str]] = []
    for field in FIELDS:
        for i, value in enumerate(subscribers.get(field) or ()):
            found.append((f"{field}[{i}]", parse(field, i, value)))
    return found


def shown(network: str) -> str:
    """A network as an operator wrote it: an address alone, a prefix with its length."""
    net = ipaddress.ip_network(network)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def address(text: str) -> Address | None:
    """A peer's address as the lookup wants it: IPv4 for an IPv4-mapped IPv6 address (a
    dual-stack socket's view of an IPv4 client), no zone, brackets or port of an IPv6
    literal; None when ``text`` is not an address."""
    text = text.strip()
    if text.startswith("["):  # "[2001:db8::1]" or "[2001:db8::1]:443"
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(found, IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def trusted_networks(entries: Iterable[str]) -> list[Network]:
    """The trusted proxies setting (addresses or prefixes); ValueError naming a bad one."""
    nets = []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise NetworkError(
                f"BILLING_NOTICE_TRUSTED_PROXIES: {entry!r} is not an address or prefix"
            ) from None
    return nets


def client_address(
    remote: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> Address | None:
    """The customer's address. A peer that is not a trusted proxy is the customer. From a
    trusted proxy, X-Forwarded-For is read from the right (each proxy appends the address
    it received from), skipping trusted proxies: the first address that is not one is the
    customer's. Entries further left were written by the customer and prove nothing; the
    leftmost is what a spoofing client would set. None when that entry is not an address.
    """
    peer = address(remote or "")
    if peer is None or not _within(peer, trusted):
        return peer
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        found = address(hop)
        if found is None:
            return None
        if not _within(found, trusted):
            return found
    # every hop is a trusted proxy: the leftmost is where the request came from
    return address(hops[0]) if hops else peer


def _within(addr: Address, nets: Sequence[Network]) -> bool:
    return any(addr in net for net in nets if net.version == addr.version)
