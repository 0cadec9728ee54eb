"""``contracts load`` refuses addresses and prefixes that overlap between contracts, in the
file and against contracts already stored, naming both contracts and networks; nothing of
a refused file is stored."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.invoicing import contracts_file, service
from services.runtime import db

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)


def _contract(number: str, **subscribers: list[str]) -> dict[str, Any]:
    return {
        "contract": number,
        "customer_name": f"Customer {number}",
        "currency": "CZK",
        "monthly_fee_minor": 49900,
        "subscribers": subscribers,
    }


def _file(tmp: Path, name: str, *contracts: dict[str, Any]) -> Path:
    path = tmp / name
    path.write_text(json.dumps({"contracts": list(contracts)}, indent=1))
    return path


async def _load(url: str, path: Path) -> tuple[int, int]:
    conn = await db.connect(url, "invoicing")
    try:
        return await service.load_contracts_file(conn, contracts_file.records(path), NOW)
    finally:
        await conn.close()


async def _stored(url: str) -> dict[str, list[str]]:
    conn = await db.connect(url, "invoicing")
    try:
        rows = await conn.fetch(
            "SELECT contract, network::text AS n FROM contract_networks ORDER BY 1, 2"
        )
        contracts = await conn.fetch("SELECT contract FROM contracts ORDER BY 1")
    finally:
        await conn.close()
    found: dict[str, list[str]] = {r["contract"]: [] for r in contracts}
    for r in rows:
        found[r["contract"]].append(r["n"])
    return found


def test_overlapping_addresses_are_refused_naming_both_contracts(
    database_url: str, tmp_path: Path
) -> None:
    async def go() -> None:
        await db.migrate(database_url, "invoicing")
        first = _file(
            tmp_path, "first.json",
            _contract("1001", ipv4=["192.0.2.5"], ipv4_prefixes=["192.0.2.0/29"]),  # its own
            _contract("1002", ipv6_prefixes=["2001:db8:100::/48"]),
            _contract("1003", ipv4=["198.51.100.1"]),
        )  # fmt: skip
        assert await _load(database_url, first) == (3, 3)
        before = await _stored(database_url)
        assert before == {
            "1001": ["192.0.2.0/29", "192.0.2.5/32"],
            "1002": ["2001:db8:100::/48"],
            "1003": ["198.51.100.1/32"],
        }

        # Within one file: an address inside another contract's prefix, both families.
        within = _file(
            tmp_path, "within.json",
            _contract("2001", ipv4_prefixes=["203.0.113.0/24"]),
            _contract("2002", ipv4=["203.0.113.77"]),
            _contract("2003", ipv6=["2001:db8:aaaa::1"]),
            _contract("2004", ipv6_prefixes=["2001:db8:aaaa::/64"]),
        )  # fmt: skip
        with pytest.raises(contracts_file.ContractsFileError) as refused:
            await _load(database_url, within)
        message = str(refused.value)
        assert "contract 2001's ipv4_prefixes[0] 203.0.113.0/24" in message
        assert "contract 2002's ipv4[0] 203.0.113.77" in message
        assert "contract 2003's ipv6[0] 2001:db8:aaaa::1" in message
        assert "contract 2004's ipv6_prefixes[0] 2001:db8:aaaa::/64" in message
        assert "within.json: line" in message and "contracts[1]" in message

        # Against what is stored: a new contract taking 1001's address, one whose prefix
        # holds 1002's; the same address twice is an overlap too.
        for name, new, stored in (
            ("a.json", _contract("3001", ipv4=["192.0.2.5"]), "contract 1001's 192.0.2.5"),
            ("b.json", _contract("3002", ipv6_prefixes=["2001:db8::/32"]),
             "contract 1002's 2001:db8:100::/48"),
            ("c.json", _contract("3003", ipv4_prefixes=["198.51.100.0/24"]),
             "contract 1003's 198.51.100.1"),
        ):  # fmt: skip
            with pytest.raises(contracts_file.ContractsFileError) as refused:
                await _load(database_url, _file(tmp_path, name, new))
            assert stored + " (already stored)" in str(refused.value)
            assert f"contract {new['contract']}'s" in str(refused.value)
        assert await _stored(database_url) == before  # nothing of a refused file

        # A file that moves an address from one contract to another is judged whole,
        # whatever the order of its records.
        moved = _file(
            tmp_path, "moved.json",
            _contract("1003", ipv4=["192.0.2.5"]),
            _contract("1001", ipv4_prefixes=["192.0.2.8/29"]),
        )  # fmt: skip
        assert await _load(database_url, moved) == (2, 2)
        assert await _stored(database_url) == {
            "1001": ["192.0.2.8/29"],
            "1002": ["2001:db8:100::/48"],
            "1003": ["192.0.2.5/32"],
        }

    asyncio.run(go())


@pytest.mark.parametrize(
    ("subscribers", "message"),
    [
        ({"ipv4": ["192.0.2.300"]}, "'subscribers.ipv4[0]': expected an IPv4 address"),
        ({"ipv4": ["2001:db8::1"]}, "'subscribers.ipv4[0]': expected an IPv4 address"),
        ({"ipv6": ["192.0.2.1"]}, "'subscribers.ipv6[0]': expected an IPv6 address"),
        ({"ipv4_prefixes": ["192.0.2.1/24"]}, "has host bits set"),
        ({"ipv6_prefixes": ["2001:db8::1", "x"]}, "'subscribers.ipv6_prefixes[0]'"),
    ],
)
def test_a_malformed_address_is_refused_where_it_is(
    tmp_path: Path, subscribers: dict[str, list[str]], message: str
) -> None:
    path = _file(tmp_path, "bad.json", _contract("1001"), _contract("1002", **subscribers))
    with pytest.raises(contracts_file.ContractsFileError) as refused:
        contracts_file.read(path)
    assert message in str(refused.value)
    assert "contracts[1]" in str(refused.value)
