"""A late fee dunning charged is billed once, on the contract's next invoice."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import pytest

from schemas import events as ev
from schemas.envelope import envelope
from services.invoicing import contracts_file, service
from services.invoicing.settings import InvoicingSettings
from services.runtime import db
from services.runtime.runs import Run
from services.runtime.unit import Unit

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 1, 1, 7, tzinfo=UTC)


def test_fee_goes_on_the_next_invoice_once(database_url: str) -> None:
    asyncio.run(_fees(database_url))


async def _fees(url: str) -> None:
    await db.migrate(url, "invoicing")
    conn = await db.connect(url, "invoicing")

    async def unit(fn):  # type: ignore[no-untyped-def]
        async with conn.transaction():
            u = Unit(conn, NOW, "/test")
            result = await fn(u)
            await u.flush()
            return result

    try:
        records = contracts_file.read(
            ROOT / "services" / "devstack" / "demo_data" / "contracts.json"
        )
        await unit(lambda u: service.load_contracts(u, records))
        fee = ev.FeeCharged(
            contract="1002", request_id="fee@2026000002", invoice_number="2026000002",
            amount_minor=5000, currency="CZK", step="fee", policy="p",
        )  # fmt: skip
        event = envelope("fee.charged.v1", "/test", "1002", fee, NOW)
        await unit(lambda u: service.on_fee_charged(u, Run.of(event, fee)))
        await unit(lambda u: service.on_fee_charged(u, Run.of(event, fee)))  # redelivered: once
        # a fee in another currency than the contract's waits for an operator, unbilled
        eur = fee.model_copy(update={"request_id": "fee@eur", "currency": "EUR"})
        eur_event = envelope("fee.charged.v1", "/test", "1002", eur, NOW)
        await unit(lambda u: service.on_fee_charged(u, Run.of(eur_event, eur)))
        settings = InvoicingSettings(database_url=url)
        jan = (await service.billing_run(conn, settings, "2027-01", date(2027, 1, 1), NOW)).invoices
        amounts = {i.contract: (i.amount_minor, i.fees_minor) for i in jan}
        assert amounts == {"1001": (49900, 0), "1002": (54900, 5000), "1003": (49900, 0)}
        feb = (await service.billing_run(conn, settings, "2027-02", date(2027, 2, 1), NOW)).invoices
        assert {i.contract: i.amount_minor for i in feb}["1002"] == 49900  # billed once
        billed = dict(await conn.fetch("SELECT request_id, billed_on FROM pending_fees"))
        assert billed == {"fee@2026000002": amounts_numbers(jan)["1002"], "fee@eur": None}
        # a run in chunks of one contract: each contract once, numbers gapless, in order
        one = InvoicingSettings(database_url=url, billing_chunk=1)
        run = await service.billing_run(conn, one, "2027-03", date(2027, 3, 1), NOW, keep=2)
        assert run.issued == 3 and [i.contract for i in run.invoices] == ["1001", "1002"]
        mar = (await service.billing_run(conn, one, "2027-04", date(2027, 4, 1), NOW)).invoices
        assert [i.contract for i in mar] == ["1001", "1002", "1003"]
        numbers = [int(i.invoice_number) for i in feb + run.invoices + mar]
        assert numbers == [
            *range(numbers[0], numbers[0] + 5),
            *range(numbers[0] + 6, numbers[0] + 9),
        ]
        again = await service.billing_run(conn, one, "2027-04", date(2027, 4, 1), NOW)
        assert again.issued == 0 and again.invoices == []
    finally:
        await conn.close()


def amounts_numbers(invoices: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {i.contract: i.invoice_number for i in invoices}


def test_a_contract_with_invoices_cannot_be_deleted_or_renumbered(database_url: str) -> None:
    asyncio.run(_keep_invoiced(database_url))


async def _keep_invoiced(url: str) -> None:
    """No foreign key checks each invoice of a billing run (migration 004); a trigger keeps
    what it guarded: a contract with invoices is neither deleted nor renumbered, by hand
    from any search path, while one without invoices is."""
    await db.migrate(url, "invoicing")
    conn = await db.connect(url, "invoicing")
    plain = await asyncpg.connect(url)  # no search path: what an operator's psql has
    try:
        records = contracts_file.read(
            ROOT / "services" / "devstack" / "demo_data" / "contracts.json"
        )
        async with conn.transaction():
            u = Unit(conn, NOW, "/test")
            await service.load_contracts(u, records)
            await u.flush()
        await service.billing_run(
            conn, InvoicingSettings(database_url=url), "2027-01", date(2027, 1, 1), NOW
        )
        await conn.execute("DELETE FROM invoices WHERE contract = '1003'")
        for sql in (
            "DELETE FROM invoicing.contracts WHERE contract = '1001'",
            "UPDATE invoicing.contracts SET contract = '9001' WHERE contract = '1002'",
        ):
            with pytest.raises(asyncpg.ForeignKeyViolationError, match="has invoices"):
                await plain.execute(sql)
        assert await plain.execute("DELETE FROM invoicing.contracts WHERE contract = '1003'") == (
            "DELETE 1"
        )
        await plain.execute("UPDATE invoicing.contracts SET active = false WHERE contract = '1001'")
        assert await conn.fetchval("SELECT count(*) FROM contracts") == 2
    finally:
        await plain.close()
        await conn.close()


def test_a_contracts_file_loads_whole_or_not_at_all(database_url: str, tmp_path: Path) -> None:
    asyncio.run(_load_file(database_url, tmp_path))


async def _load_file(url: str, tmp: Path) -> None:
    """A file read as it is written, a chunk at a time in one transaction: a bad record
    in the last chunk leaves nothing of the chunks before it, not a contract and not an
    event; a good file loads whole, and again it changes nothing and announces nothing."""
    await db.migrate(url, "invoicing")
    conn = await db.connect(url, "invoicing")
    items = [
        {"contract": str(7000 + i), "customer_name": f"C {i}", "currency": "EUR",
         "monthly_fee_minor": 1990, "subscribers": {"logins": [f"pppoe{i}"]}}
        for i in range(25)
    ]  # fmt: skip
    path = tmp / "contracts.json"
    try:
        for bad in ({**items[0]}, {**items[24], "currency": "eur"}):
            path.write_text(json.dumps({"contracts": [*items[:24], bad]}))
            with pytest.raises(contracts_file.ContractsFileError, match=r"contracts\[24\]"):
                await service.load_contracts_file(conn, contracts_file.records(path), NOW, chunk=7)
            counts = "SELECT (SELECT count(*) FROM contracts), (SELECT count(*) FROM outbox)"
            assert tuple(await conn.fetchrow(counts)) == (0, 0)
        path.write_text(json.dumps(items))
        loaded = await service.load_contracts_file(conn, contracts_file.records(path), NOW, chunk=7)
        assert loaded == (25, 25)
        events = await conn.fetchval("SELECT sum(coalesce(records, 1)) FROM outbox")
        assert events == 25 and await conn.fetchval("SELECT count(*) FROM contracts") == 25
        stored = await conn.fetchrow("SELECT * FROM contracts WHERE contract = '7024'")
        assert stored["data"]["subscribers"]["logins"] == ["pppoe24"]
        assert (stored["currency"], stored["monthly_fee_minor"], stored["due_kind"]) == (
            "EUR", 1990, "days_after_issue",
        )  # fmt: skip
        again = await service.load_contracts_file(conn, contracts_file.records(path), NOW, chunk=7)
        assert again == (25, 0)
        items[3]["monthly_fee_minor"] = 2490
        path.write_text(json.dumps(items))
        assert await service.load_contracts_file(conn, contracts_file.records(path), NOW) == (25, 1)
        fee = "SELECT monthly_fee_minor FROM contracts WHERE contract = '7003'"
        assert await conn.fetchval(fee) == 2490
    finally:
        await conn.close()
