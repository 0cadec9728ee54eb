"""The reference network gear's rules: Linux nftables, as text for ``nft -f``. Pure.

One table (``inet billing`` by default) holds a set per access state and address family;
customers move between sets, the rules never change:

- ``notice``: HTTP (port 80) is DNATed to the notice server; everything else passes.
- ``suspended``: HTTP goes to the notice page too; DNS and the walled garden (notice
  server, banks) pass; everything else is rejected with ICMP administratively-prohibited,
  so a browser fails at once instead of timing out.
- ``restricted``: each address is rate limited, up and down (a dynamic set per direction
  keeps one token bucket per address).
- ``active``: in no set, untouched.

A full ruleset replaces the table in one transaction (``delete table`` + definition); a
change deletes a contract's addresses from its old set and adds them to the new one, also
in one transaction, all deletes before all adds so an address moving between contracts in
one batch is never in two sets.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

STATES_WITH_SETS = ("notice", "suspended", "restricted")
_RATE = re.compile(r"^[0-9]+ ?(bytes|kbytes|mbytes)/(second|minute)$")


class GearConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Endpoint:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int

    @classmethod
    def parse(cls, text: str, what: str) -> Endpoint:
        """``192.0.2.1:8080`` or ``[2001:db8::1]:8080``."""
        m = re.fullmatch(r"\[?([0-9A-Fa-f:.]+?)\]?:([0-9]{1,5})", text.strip())
        try:
            if m is None:
                raise ValueError
            return cls(ipaddress.ip_address(m.group(1)), int(m.group(2)))
        except ValueError:
            raise GearConfigError(f"{what}: expected ADDRESS:PORT, got {text!r}") from None

    def render(self) -> str:
        if self.address.version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class GearConfig:
    table: str = "billing"
    notice4: Endpoint | None = None
    notice6: Endpoint | None = None
    garden: tuple[str, ...] = ()  # addresses or prefixes always reachable when suspended
    restrict_rate: str = "1 mbytes/second"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", self.table):
            raise GearConfigError(f"table: expected a short lower-case name, got {self.table!r}")
        if not _RATE.match(self.restrict_rate):
            raise GearConfigError(
                f"restrict rate: expected e.g. '1 mbytes/second', got {self.restrict_rate!r}"
            )
        for item in self.garden:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise GearConfigError(
                    f"walled garden: not an address or prefix: {item!r}"
                ) from None

    def garden_of(self, version: int) -> list[str]:
        nets = [ipaddress.ip_network(g, strict=False) for g in self.garden]
        notice = self.notice4 if version == 4 else self.notice6
        if notice is not None:
            nets.append(ipaddress.ip_network(notice.address))
        return _elements(str(n) for n in nets if n.version == version)


@dataclass(frozen=True)
class Entry:
    """What gear needs of one contract's ``network.access`` state."""

    contract: str
    state: str
    version: int
    v4: tuple[str, ...]
    v6: tuple[str, ...]

    @classmethod
    def of(cls, access: Mapping[str, Any]) -> Entry:
        subs = access.get("subscribers") or {}
        addresses = [
            *subs.get("ipv4", []),
            *subs.get("ipv4_prefixes", []),
            *subs.get("ipv6", []),
            *subs.get("ipv6_prefixes", []),
        ]
        nets = [ipaddress.ip_network(a, strict=False) for a in addresses]
        return cls(
            str(access["contract"]),
            str(access["state"]),
            int(access["version"]),
            tuple(_elements(str(n) for n in nets if n.version == 4)),
            tuple(_elements(str(n) for n in nets if n.version == 6)),
        )


def _elements(items: Iterable[str]) -> list[str]:
    out = []
    for item in items:
        net = ipaddress.ip_network(item, strict=False)
        out.append(str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net))
    return sorted(set(out))


def _set(name: str, family: int, elements: list[str], dynamic: bool = False) -> str:
    kind = "ipv4_addr" if family == 4 else "ipv6_addr"
    flags = "size 65535; flags dynamic;" if dynamic else "flags interval;"
    body = f"elements = {{ {', '.join(elements)} }}" if elements else ""
    return f"  set {name} {{ type {kind}; {flags} {body} }}"


def ruleset(cfg: GearConfig, entries: Iterable[Entry]) -> str:
    """The whole table, replacing whatever is there, in one transaction."""
    members: dict[tuple[str, int], list[str]] = {
        (s, f): [] for s in STATES_WITH_SETS for f in (4, 6)
    }
    for e in entries:
        if e.state in STATES_WITH_SETS:
            members[(e.state, 4)] += e.v4
            members[(e.state, 6)] += e.v6
    t = cfg.table
    lines = [f"table inet {t} {{}}", f"delete table inet {t}", f"table inet {t} {{"]
    for (state, family), elements in members.items():
        lines.append(_set(f"{state}{family}", family, _elements(elements)))
    for family in (4, 6):
        lines.append(_set(f"garden{family}", family, cfg.garden_of(family)))
        lines.append(_set(f"rl_up{family}", family, [], dynamic=True))
        lines.append(_set(f"rl_down{family}", family, [], dynamic=True))
    lines.append("  chain prerouting {")
    lines.append("    type nat hook prerouting priority dstnat; policy accept;")
    for family, notice in ((4, cfg.notice4), (6, cfg.notice6)):
        if notice is None:
            continue
        ip = "ip" if family == 4 else "ip6"
        for state in ("notice", "suspended"):
            lines.append(
                f"    {ip} saddr @{state}{family} {ip} daddr != @garden{family} tcp dport 80"
                f" dnat {ip} to {notice.render()}"
            )
    lines.append("  }")
    lines.append("  chain forward {")
    lines.append("    type filter hook forward priority filter; policy accept;")
    for family in (4, 6):
        ip = "ip" if family == 4 else "ip6"
        icmp = "icmp" if family == 4 else "icmpv6"
        lines += [
            f"    {ip} saddr @suspended{family} {ip} daddr @garden{family} accept",
            f"    {ip} saddr @suspended{family} meta l4proto {{ tcp, udp }} th dport 53 accept",
            f"    {ip} saddr @suspended{family} reject with {icmp} type admin-prohibited",
            f"    {ip} saddr @restricted{family} update @rl_up{family}"
            f" {{ {ip} saddr limit rate over {cfg.restrict_rate} }} drop",
            f"    {ip} daddr @restricted{family} update @rl_down{family}"
            f" {{ {ip} daddr limit rate over {cfg.restrict_rate} }} drop",
        ]
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def changes(cfg: GearConfig, moves: Iterable[tuple[Entry | None, Entry]]) -> str:
    """Move contracts from what gear applied (``None``: nothing yet) to their new state:
    every delete first, then every add."""
    deletes: list[str] = []
    adds: list[str] = []
    t = cfg.table
    for old, new in moves:
        if old is not None and old.state in STATES_WITH_SETS:
            for family, elements in ((4, old.v4), (6, old.v6)):
                if elements:
                    deletes.append(
                        f"delete element inet {t} {old.state}{family} {{ {', '.join(elements)} }}"
                    )
        if new.state in STATES_WITH_SETS:
            for family, elements in ((4, new.v4), (6, new.v6)):
                if elements:
                    adds.append(
                        f"add element inet {t} {new.state}{family} {{ {', '.join(elements)} }}"
                    )
    return "\n".join(deletes + adds) + ("\n" if deletes or adds else "")
