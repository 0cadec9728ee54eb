"""Dunning's requests applied as one batch give exactly what applying them one at a time
gives: states, versions, the notice on screen, and the published access states in order."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import asyncpg

from schemas import events as ev
from schemas.envelope import envelope
from services.provisioning.service import Provisioning
from services.runtime import db
from services.runtime.runs import handle
from services.runtime.unit import Unit

NOW = datetime(2026, 12, 20, 10, tzinfo=UTC)
CONTRACTS = ("3001", "3002", "3003", "3004")


def _request(kind: str, contract: str, step: str) -> tuple[str, Any]:
    common: dict[str, Any] = {
        "contract": contract, "request_id": f"{contract}-{step}", "step": step,
        "policy": "notice-then-suspend", "overdue_minor": 49900, "currency": "CZK", "invoices": [],
        "account": "2001234561/2010", "decided_at": NOW,
    }  # fmt: skip
    if kind == "notice":
        return "notice.requested.v1", ev.NoticeRequested(**common, promise_max_days=5)
    if kind == "suspend":
        return "suspend.requested.v1", ev.SuspendRequested(**common)
    if kind == "restrict":
        return "restrict.requested.v1", ev.RestrictRequested(**common)
    return "restore.requested.v1", ev.RestoreRequested(
        contract=contract, request_id=f"{contract}-{step}", reason="paid", decided_at=NOW
    )


# Interleaved across contracts, with every transition: repeats that change nothing, a
# notice then a restore (the notice comes off the screen), a restore then a new notice (it
# stays), a suspension over a notice, a restriction, and a contract provisioning never saw.
SCRIPT = [
    ("notice", "3001", "n1"), ("notice", "3002", "n1"), ("notice", "3001", "n1"),
    ("suspend", "3001", "s1"), ("restore", "3002", "r1"), ("restrict", "3003", "x1"),
    ("notice", "3003", "n1"), ("restore", "3001", "r1"), ("notice", "3002", "n2"),
    ("suspend", "3003", "s1"), ("notice", "9999", "n1"), ("restore", "3004", "r1"),
    ("suspend", "3002", "s2"), ("restore", "3003", "r2"), ("notice", "3003", "n3"),
]  # fmt: skip


def test_a_batch_of_requests_equals_them_one_at_a_time(database_url: str) -> None:
    asyncio.run(_compare(database_url))


async def _run(conn: asyncpg.Connection, batches: list[list[tuple[str, str, str]]]) -> Any:
    p = Provisioning()
    await conn.execute("TRUNCATE access, notices")
    for c in CONTRACTS:
        await conn.execute(
            "INSERT INTO access (contract, subscribers, effective_at) VALUES ($1, $2, $3)",
            c, {"ipv4": [f"100.64.2.{c[-1]}"]}, NOW,
        )  # fmt: skip
    published = []
    for batch in batches:
        async with conn.transaction():
            unit = Unit(conn, NOW, "/test")
            items = []
            for kind, contract, step in batch:
                type_, data = _request(kind, contract, step)
                items.append((p.on_request, envelope(type_, "/t", contract, data, NOW), data))
            await handle(unit, items)
            await unit.flush()
            published += [json.loads(value)["data"] for _, _, value, _, _ in unit.outbox]
    access = [
        tuple(r)
        for r in await conn.fetch(
            "SELECT contract, state, reason, version, subscribers FROM access ORDER BY contract"
        )
    ]
    notices = [
        (r["contract"], r["request_id"], r["request"]["step"], r["request"]["promise_max_days"])
        for r in await conn.fetch("SELECT * FROM notices ORDER BY contract")
    ]
    events = [(e["contract"], e["state"], e["reason"], e["version"]) for e in published]
    return access, notices, events


async def _compare(url: str) -> None:
    await db.migrate(url, "provisioning")
    conn = await db.connect(url, "provisioning")
    try:
        one_by_one = await _run(conn, [[step] for step in SCRIPT])
        batched = await _run(conn, [SCRIPT[:7], SCRIPT[7:]])
        whole = await _run(conn, [SCRIPT])
    finally:
        await conn.close()
    assert batched == one_by_one and whole == one_by_one
    access, notices, events = one_by_one
    assert [(a[0], a[1], a[3]) for a in access] == [
        ("3001", "active", 3), ("3002", "suspended", 4), ("3003", "notice", 5),
        ("3004", "active", 0),
    ]  # fmt: skip
    assert notices == [
        ("3002", "3002-n2", "n2", 5), ("3003", "3003-n3", "n3", 5), ("9999", "9999-n1", "n1", 5),
    ]  # fmt: skip
    assert [e for e in events if e[0] == "3003"] == [
        ("3003", "restricted", "unpaid after due date", 1),
        ("3003", "notice", "payment notice", 2),
        ("3003", "suspended", "unpaid after notice", 3),
        ("3003", "active", "payment received", 4),
        ("3003", "notice", "payment notice", 5),
    ]
    assert len(events) == 3 + 4 + 5
