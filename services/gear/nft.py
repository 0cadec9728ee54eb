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


# --- traffic counters ----------------------------------------------------------------------
#
# A table of its own (``inet <table>_traffic``), so that rebuilding the access table (at
# start, every resync, after a hand edit) never resets the counters. Four sets with
# per-element counters: ``rx4``/``rx6`` are looked up by destination (to the customer),
# ``tx4``/``tx6`` by source (from the customer), in a forward chain that runs after the
# access table's (priority filter + 10), so a packet the access rules reject or drop is not
# counted. Adding an element that is there keeps its counter and deleting one forgets it:
# only the addresses that come or go are touched. Each set's comment holds the ``boot_id``
# the table was created with: a table that is there after a gear restart keeps counting
# under the same id; a new table (first start, ``nft flush ruleset``, a reboot) is a new id.

TRAFFIC_SETS = {("rx", 4), ("tx", 4), ("rx", 6), ("tx", 6)}


def traffic_table(cfg: GearConfig) -> str:
    return f"{cfg.table}_traffic"


def traffic_elements(entries: Iterable[Entry]) -> dict[str, str]:
    """Each counted element (an address or a prefix) and the contract it is counted for.
    An interval set cannot hold an address inside a prefix it also holds: such an address
    is counted with its prefix."""
    found: dict[str, str] = {}
    for e in sorted(entries, key=lambda e: e.contract):
        for element in (*e.v4, *e.v6):
            found.setdefault(element, e.contract)
    nets = sorted(
        (ipaddress.ip_network(el, strict=False) for el in found),
        key=lambda n: (n.version, n.prefixlen),
    )
    covered: set[str] = set()
    prefixes = [n for n in nets if n.prefixlen < n.max_prefixlen]
    for n in nets:
        if any(
            p != n and p.version == n.version and n.subnet_of(p)  # type: ignore[arg-type]
            for p in prefixes
        ):
            covered.add(_element(n))
    return {el: c for el, c in found.items() if el not in covered}


def _element(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _family(element: str) -> int:
    return 6 if ":" in element else 4


def traffic_ruleset(cfg: GearConfig, boot_id: str, elements: Iterable[str]) -> str:
    """The counters' table created anew (counters at zero) under ``boot_id``."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", boot_id):
        raise GearConfigError(f"boot id: expected letters and digits, got {boot_id!r}")
    t = traffic_table(cfg)
    by_family: dict[int, list[str]] = {4: [], 6: []}
    for el in elements:
        by_family[_family(el)].append(el)
    lines = [f"table inet {t} {{}}", f"delete table inet {t}", f"table inet {t} {{"]
    for direction, family in sorted(TRAFFIC_SETS):
        kind = "ipv4_addr" if family == 4 else "ipv6_addr"
        members = sorted(by_family[family])
        body = f" elements = {{ {', '.join(members)} }}" if members else ""
        head = f"type {kind}; flags interval; counter;"
        lines.append(f'  set {direction}{family} {{ {head} comment "{boot_id}";{body} }}')
    lines.append("  chain forward {")
    lines.append("    type filter hook forward priority filter + 10; policy accept;")
    lines.append("    ip saddr @tx4")
    lines.append("    ip daddr @rx4")
    lines.append("    ip6 saddr @tx6")
    lines.append("    ip6 daddr @rx6")
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def traffic_changes(cfg: GearConfig, have: Iterable[str], want: Iterable[str]) -> str:
    """Make the counted elements ``want``: delete the gone ones, add the new ones; the
    others keep their counters."""
    have_set, want_set = set(have), set(want)
    t = traffic_table(cfg)
    lines: list[str] = []
    for verb, items in (("delete", have_set - want_set), ("add", want_set - have_set)):
        for family in (4, 6):
            chosen = sorted(el for el in items if _family(el) == family)
            if chosen:
                for direction in ("rx", "tx"):
                    lines.append(
                        f"{verb} element inet {t} {direction}{family} {{ {', '.join(chosen)} }}"
                    )
    return "\n".join(lines) + ("\n" if lines else "")


@dataclass(frozen=True)
class Counted:
    """The counters' table as ``nft -j list table`` shows it."""

    boot_id: str | None  # None: the sets disagree or have no id; the table is to be made anew
    counters: dict[str, tuple[int, int]]  # element -> (rx bytes, tx bytes)


def read_counters(listing: Mapping[str, Any]) -> Counted:
    """Parse ``nft -j list table inet <table>_traffic``."""
    boots: set[str | None] = set()
    rx: dict[str, int] = {}
    tx: dict[str, int] = {}
    seen: set[str] = set()
    for item in listing.get("nftables", []):
        s = item.get("set") if isinstance(item, dict) else None
        if not s or (s.get("name", "")[:2], int(s.get("name", "x0")[2:] or 0)) not in TRAFFIC_SETS:
            continue
        seen.add(s["name"])
        boots.add(s.get("comment"))
        into = rx if s["name"].startswith("rx") else tx
        for wrapped in s.get("elem", []):
            elem = wrapped.get("elem", wrapped) if isinstance(wrapped, dict) else wrapped
            value = elem.get("val") if isinstance(elem, dict) else elem
            counter = (elem.get("counter") if isinstance(elem, dict) else None) or {}
            into[_value(value)] = int(counter.get("bytes", 0))
    complete = len(seen) == len(TRAFFIC_SETS) and len(boots) == 1
    boot = next(iter(boots)) if complete else None
    elements = set(rx) | set(tx)
    return Counted(boot, {el: (rx.get(el, 0), tx.get(el, 0)) for el in sorted(elements)})


def _value(value: Any) -> str:
    if isinstance(value, dict) and "prefix" in value:
        return f"{value['prefix']['addr']}/{value['prefix']['len']}"
    if isinstance(value, dict) and "range" in value:
        low, high = value["range"]
        first, last = ipaddress.ip_address(low), ipaddress.ip_address(high)
        nets = list(ipaddress.summarize_address_range(first, last))
        return str(nets[0]) if len(nets) == 1 else f"{low}-{high}"
    return str(value)
