"""Drift between desired access and what gear reports it applied, against PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import asyncpg

from schemas import events as ev
from schemas.envelope import envelope
from services.provisioning import drift
from services.provisioning.service import Provisioning, Q
from services.runtime import db
from services.runtime.runs import Run, handle
from services.runtime.unit import Unit

NOW = datetime(2026, 12, 20, 10, tzinfo=UTC)


async def in_unit(conn: asyncpg.Connection, fn: Any, at: datetime = NOW) -> None:
    """``fn(unit)`` in one transaction at ``at``, its events written, as the consumer does."""
    async with conn.transaction():
        u = Unit(conn, at, "/test")
        await fn(u)
        await u.flush()


async def add_contracts(conn: asyncpg.Connection, p: Provisioning, ips: dict[str, str]) -> None:
    """Contracts (number -> IPv4 address), each at access version 1."""
    for c, ip in ips.items():
        data = ev.ContractUpserted(
            contract=c, customer_name=c, currency="CZK", monthly_fee_minor=1,
            subscribers=ev.Subscribers(ipv4=[ip]),
        )  # fmt: skip
        event = envelope("contract.upserted.v1", "/test", c, data, NOW)
        await in_unit(conn, lambda u, e=event, d=data: p.on_contract(u, Run.of(e, d)))


def test_drift_lists_what_each_gear_has_not_applied(database_url: str) -> None:
    asyncio.run(_drift(database_url))


async def _drift(url: str) -> None:
    await db.migrate(url, "provisioning")
    conn = await db.connect(url, "provisioning")
    p = Provisioning()

    async def unit(fn) -> None:  # type: ignore[no-untyped-def]
        await in_unit(conn, fn)

    async def applied(gear: str, contract: str, version: int, state: str) -> None:
        data = ev.GearApplied(
            gear=gear,
            contract=contract,
            version=version,
            state=state,
            applied_at=NOW,  # type: ignore[arg-type]
        )
        event = envelope("gear.applied.v1", f"/gear/{gear}", contract, data, NOW)
        await unit(lambda u: drift.on_gear_applied(u, Run.of(event, data)))

    try:
        await add_contracts(conn, p, {"1001": "100.64.0.1", "1002": "100.64.0.2"})
        await applied("gw-a", "1001", 1, "active")
        await applied("gw-a", "1002", 1, "active")
        await applied("gw-b", "1001", 1, "active")
        assert [(r["gear"], r["contract"]) for r in await conn.fetch(Q.drift, 100)] == [
            ("gw-b", "1002")
        ]
        await unit(lambda u: p.change(u, "1001", "suspend"))  # version 2, nobody applied yet
        rows = await conn.fetch(Q.drift, 100)
        assert [
            (r["gear"], r["contract"], r["desired_version"], r["applied_version"]) for r in rows
        ] == [
            ("gw-a", "1001", 2, 1),
            ("gw-b", "1001", 2, 1),
            ("gw-b", "1002", 1, None),
        ]
        await applied("gw-a", "1001", 2, "suspended")
        await applied("gw-a", "1001", 1, "active")  # an old report never goes back
        counts = {r["gear"]: r["behind"] for r in await conn.fetch(Q.drift_counts, NOW)}
        assert counts == {"gw-b": 2}
    finally:
        await conn.close()


def test_a_run_of_contract_events_publishes_each_new_address_set(database_url: str) -> None:
    asyncio.run(_contract_run(database_url))


async def _contract_run(url: str) -> None:
    """A contracts load arrives as one batch: new contracts, one changed twice within the
    batch, one sent again unchanged. Each contract's final addresses are stored; a state
    is published for each new or changed contract, with its final addresses, and none for
    the unchanged one."""
    await db.migrate(url, "provisioning")
    conn = await db.connect(url, "provisioning")
    p = Provisioning()

    def contract(c: str, ip: str) -> tuple[object, ev.ContractUpserted]:
        data = ev.ContractUpserted(
            contract=c, customer_name=c, currency="CZK", monthly_fee_minor=1,
            subscribers=ev.Subscribers(ipv4=[ip]),
        )  # fmt: skip
        return envelope("contract.upserted.v1", "/test", c, data, NOW), data

    async def batch(items: list[tuple[object, ev.ContractUpserted]]) -> list[dict[str, object]]:
        async with conn.transaction():
            u = Unit(conn, NOW, "/test")
            await handle(u, [(p.on_contract, e, d) for e, d in items])
            await u.flush()
            return [json.loads(value)["data"] for _, _, value, _, _ in u.outbox]

    try:
        await batch([contract("2001", "100.64.1.1")])
        out = await batch(
            [
                contract("2002", "100.64.1.2"),
                contract("2003", "100.64.1.3"),
                contract("2003", "100.64.1.33"),  # changed again in the same batch
                contract("2001", "100.64.1.1"),  # unchanged
            ]
        )
        assert sorted((o["contract"], o["subscribers"]["ipv4"], o["version"]) for o in out) == [
            ("2002", ["100.64.1.2"], 1),
            ("2003", ["100.64.1.33"], 1),
        ]
        rows = await conn.fetch(
            "SELECT contract, subscribers, version FROM access ORDER BY contract"
        )
        assert [(r["contract"], r["subscribers"]["ipv4"], r["version"]) for r in rows] == [
            ("2001", ["100.64.1.1"], 1),
            ("2002", ["100.64.1.2"], 1),
            ("2003", ["100.64.1.33"], 1),
        ]
        out = await batch([contract("2001", "100.64.1.11")])  # a new address later
        assert [(o["contract"], o["version"]) for o in out] == [("2001", 2)]
    finally:
        await conn.close()
