"""A pipelined billing run (chunk n + 1 invoiced on a second connection while chunk n is
written) issues what a run a chunk at a time issues, and stays gapless when other runs
take numbers between a chunk's invoicing and its write; a late fee is billed once when
runs of two years race for it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from schemas import events as ev
from schemas.envelope import envelope
from services.invoicing import contracts_file, service
from services.invoicing.settings import InvoicingSettings
from services.runtime import db
from services.runtime.runs import Run
from services.runtime.unit import Unit

NOW = datetime(2027, 1, 1, 7, tzinfo=UTC)
CONTRACTS = 40  # every seventh inactive, every fifth in EUR


async def _fee(conn: asyncpg.Connection, contract: str, request_id: str, amount: int) -> None:
    async with conn.transaction():
        unit = Unit(conn, NOW, "/test")
        fee = ev.FeeCharged(
            contract=contract, request_id=request_id, invoice_number="x", amount_minor=amount,
            currency="CZK", step="fee", policy="p",
        )  # fmt: skip
        event = envelope("fee.charged.v1", "/t", contract, fee, NOW)
        await service.on_fee_charged(unit, Run.of(event, fee))
        await unit.flush()


async def _setup(url: str, tmp: Path) -> tuple[asyncpg.Connection, asyncpg.Connection]:
    await db.migrate(url, "invoicing")
    conn = await db.connect(url, "invoicing")
    reader = await db.connect(url, "invoicing")
    items = [
        {"contract": str(5000 + i), "customer_name": f"C {i}",
         "currency": "EUR" if i % 5 == 0 else "CZK", "monthly_fee_minor": 1000 + i,
         "active": i % 7 != 3, "subscribers": {"logins": [f"pppoe{i}"]}}
        for i in range(CONTRACTS)
    ]  # fmt: skip
    path = tmp / "contracts.json"
    path.write_text(json.dumps(items))
    await service.load_contracts_file(conn, contracts_file.records(path), NOW)
    await _fee(conn, "5011", "fee@x", 500)  # a late fee waiting for contract 5011, in CZK
    return conn, reader


async def _issued(conn: asyncpg.Connection, period: str) -> dict[str, tuple[str, int]]:
    rows = await conn.fetch(
        "SELECT contract, invoice_number, amount_minor FROM invoices WHERE period = $1", period
    )
    return {r["contract"]: (r["invoice_number"], r["amount_minor"]) for r in rows}


async def _numbers(conn: asyncpg.Connection) -> list[int]:
    rows = await conn.fetch("SELECT invoice_number FROM invoices ORDER BY invoice_number")
    return [int(r["invoice_number"]) for r in rows]


def _after_first_plan(
    monkeypatch: pytest.MonkeyPatch, act: Callable[[], Awaitable[None]]
) -> list[int]:
    """Run ``act`` once, after the run's first chunk is planned and before it is written;
    the list counts the chunks planned."""
    plan: Callable[..., Awaitable[Any]] = service._Run.plan
    planned = [0]

    async def plan_then_act(*args: Any) -> Any:
        chunk = await plan(*args)
        planned[0] += 1
        if planned[0] == 1:
            await act()
        return chunk

    monkeypatch.setattr(service._Run, "plan", plan_then_act)
    return planned


def test_pipelined_run_issues_what_a_chunked_run_does(database_url: str, tmp_path: Path) -> None:
    asyncio.run(_same(database_url, tmp_path))


async def _same(url: str, tmp: Path) -> None:
    conn, reader = await _setup(url, tmp)
    seven = InvoicingSettings(database_url=url, billing_chunk=7)
    try:
        serial = await service.billing_run(conn, seven, "2027-01", date(2027, 1, 1), NOW)
        piped = await service.billing_run(
            conn, seven, "2027-02", date(2027, 2, 1), NOW, keep=3, reader=reader
        )
        jan, feb = await _issued(conn, "2027-01"), await _issued(conn, "2027-02")
        active = [str(5000 + i) for i in range(CONTRACTS) if i % 7 != 3]
        assert serial.issued == piped.issued == len(active) == len(jan) == len(feb)
        assert sorted(feb) == active and jan["5011"][1] == 1011 + 500  # the fee: billed once
        assert {c: a for c, (_, a) in feb.items()} == {c: 1000 + int(c) - 5000 for c in active}
        assert [i.contract for i in piped.invoices] == active[:3]
        numbers = await _numbers(conn)
        assert numbers == list(range(numbers[0], numbers[0] + 2 * len(active)))
        assert sorted(int(n) for n, _ in feb.values()) == numbers[len(active) :]
        events = "SELECT sum(coalesce(records, 1)) FROM outbox WHERE event_type = $1"
        assert await conn.fetchval(events, "invoice.issued.v1") == 2 * len(active)
        billed = "SELECT billed_on FROM pending_fees WHERE request_id = 'fee@x'"
        assert await conn.fetchval(billed) == jan["5011"][0]
        again = await service.billing_run(
            conn, seven, "2027-02", date(2027, 2, 1), NOW, reader=reader
        )
        assert again.issued == 0 and await _numbers(conn) == numbers
    finally:
        await reader.close()
        await conn.close()


def test_a_chunk_is_invoiced_again_when_another_run_took_its_numbers(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_taken(database_url, tmp_path, monkeypatch))


async def _taken(url: str, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another run writes between the first chunk's invoicing and its write: the chunk,
    planned from numbers now taken, is invoiced again under the lock, and so is every
    chunk after it, planned from the chunk before."""
    conn, reader = await _setup(url, tmp)
    other = await db.connect(url, "invoicing")
    seven = InvoicingSettings(database_url=url, billing_chunk=7)

    async def interfere() -> None:  # a whole run of another period, on its own connection
        await service.billing_run(other, seven, "2027-09", date(2027, 9, 1), NOW)

    planned = _after_first_plan(monkeypatch, interfere)
    try:
        piped = await service.billing_run(
            conn, seven, "2027-02", date(2027, 2, 1), NOW, reader=reader
        )
        sep, feb = await _issued(conn, "2027-09"), await _issued(conn, "2027-02")
        assert planned[0] > 1 and piped.issued == len(sep) == len(feb) > 7
        assert max(int(n) for n, _ in sep.values()) < min(int(n) for n, _ in feb.values())
        numbers = await _numbers(conn)
        assert numbers == list(range(numbers[0], numbers[0] + 2 * len(feb)))
        assert [i.invoice_number for i in piped.invoices] == sorted(n for n, _ in feb.values())
        # the fee is on the run that wrote first, once
        assert sep["5011"][1] == 1511 and feb["5011"][1] == 1011
    finally:
        await other.close()
        await reader.close()
        await conn.close()


def test_concurrent_pipelined_runs_stay_gapless(database_url: str, tmp_path: Path) -> None:
    asyncio.run(_concurrent(database_url, tmp_path))


async def _concurrent(url: str, tmp: Path) -> None:
    conn, reader = await _setup(url, tmp)
    more = [await db.connect(url, "invoicing") for _ in range(2)]
    three = InvoicingSettings(database_url=url, billing_chunk=3)
    try:
        runs = await asyncio.gather(
            service.billing_run(conn, three, "2027-03", date(2027, 3, 1), NOW, reader=reader),
            service.billing_run(more[0], three, "2027-04", date(2027, 4, 1), NOW, reader=more[1]),
        )
        mar, apr = await _issued(conn, "2027-03"), await _issued(conn, "2027-04")
        assert runs[0].issued == runs[1].issued == len(mar) == len(apr)
        numbers = await _numbers(conn)
        assert numbers == list(range(numbers[0], numbers[0] + len(mar) + len(apr)))
        sequence = "SELECT last FROM invoice_sequences WHERE year = 2027"
        assert await conn.fetchval(sequence) == len(mar) + len(apr)
        assert sorted([mar["5011"][1], apr["5011"][1]]) == [1011, 1511]  # billed once
    finally:
        for c in more:
            await c.close()
        await reader.close()
        await conn.close()


def test_a_contract_is_deleted_only_once_no_run_is_in_flight(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_delete_during_run(database_url, tmp_path, monkeypatch))


async def _delete_during_run(url: str, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A contract deleted by hand after the run read it and before the run wrote its
    invoice waits for the run, then finds the invoice and is refused: no invoice is left
    of a contract that is not there (migration 005)."""
    conn, reader = await _setup(url, tmp)
    plain = await asyncpg.connect(url)  # an operator's psql
    seven = InvoicingSettings(database_url=url, billing_chunk=7)
    deleting: list[asyncio.Task[str]] = []

    async def delete() -> None:  # 5002 is in the first chunk, read and not yet written
        sql = "DELETE FROM invoicing.contracts WHERE contract = '5002'"
        deleting.append(asyncio.create_task(plain.execute(sql)))
        await asyncio.sleep(0.3)
        assert not deleting[0].done()  # waits for the run

    _after_first_plan(monkeypatch, delete)
    try:
        await service.billing_run(conn, seven, "2027-02", date(2027, 2, 1), NOW, reader=reader)
        with pytest.raises(asyncpg.ForeignKeyViolationError, match="5002 has invoices"):
            await deleting[0]
        assert "5002" in await _issued(conn, "2027-02")
        assert await conn.fetchval("SELECT count(*) FROM contracts WHERE contract = '5002'") == 1
        # once the run is over, a contract without invoices (inactive) goes at once
        assert await plain.execute("DELETE FROM invoicing.contracts WHERE contract = '5003'") == (
            "DELETE 1"
        )
    finally:
        await plain.close()
        await reader.close()
        await conn.close()


def test_a_chunk_is_invoiced_again_when_another_years_run_billed_its_fee(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_fee_taken(database_url, tmp_path, monkeypatch))


async def _fee_taken(url: str, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of another year (its own sequence: no number is taken from this run) bills a
    late fee of the first chunk after that chunk was planned with it: the chunk is
    invoiced again without the fee, and the rest of the run goes on."""
    conn, reader = await _setup(url, tmp)
    await _fee(conn, "5002", "fee@2", 700)  # 5002 is in the first chunk
    other = await db.connect(url, "invoicing")
    seven = InvoicingSettings(database_url=url, billing_chunk=7)

    async def interfere() -> None:
        await service.billing_run(other, seven, "2028-01", date(2028, 1, 1), NOW)

    planned = _after_first_plan(monkeypatch, interfere)
    try:
        piped = await service.billing_run(
            conn, seven, "2027-02", date(2027, 2, 1), NOW, reader=reader
        )
        jan, feb = await _issued(conn, "2028-01"), await _issued(conn, "2027-02")
        assert planned[0] > 1 and piped.issued == len(jan) == len(feb) > 7
        assert jan["5002"][1] == 1002 + 700 and feb["5002"][1] == 1002  # billed once
        billed = "SELECT billed_on FROM pending_fees WHERE request_id = 'fee@2'"
        assert await conn.fetchval(billed) == jan["5002"][0]
        numbers = [int(n) for n, _ in feb.values()]
        assert sorted(numbers) == list(range(min(numbers), min(numbers) + len(feb)))
    finally:
        await other.close()
        await reader.close()
        await conn.close()


def test_a_run_waits_for_a_fee_another_run_is_billing(database_url: str, tmp_path: Path) -> None:
    asyncio.run(_fee_in_flight(database_url, tmp_path))


async def _fee_in_flight(url: str, tmp: Path) -> None:
    """A run a chunk at a time reads a late fee that another run (of another year) has
    billed and not yet committed: it waits for that run and leaves the fee out."""
    conn, reader = await _setup(url, tmp)
    other = await db.connect(url, "invoicing")
    seven = InvoicingSettings(database_url=url, billing_chunk=7)
    try:
        billing = other.transaction()
        await billing.start()  # the other run's chunk, marking 5011's fee, not committed
        await other.execute(
            "UPDATE pending_fees SET billed_on = '28000001' WHERE request_id = 'fee@x'"
        )
        run = asyncio.create_task(
            service.billing_run(conn, seven, "2027-02", date(2027, 2, 1), NOW)
        )
        await asyncio.sleep(0.3)
        assert not run.done()  # waits on the fee's row
        await billing.commit()
        assert (await run).issued == len(await _issued(conn, "2027-02")) > 7
        assert (await _issued(conn, "2027-02"))["5011"][1] == 1011  # the fee left out
        billed = "SELECT billed_on FROM pending_fees WHERE request_id = 'fee@x'"
        assert await conn.fetchval(billed) == "28000001"
    finally:
        await other.close()
        await reader.close()
        await conn.close()
