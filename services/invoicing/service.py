"""Invoicing use cases: each runs inside a caller's unit of work (one transaction)."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from itertools import islice
from typing import Literal, NamedTuple, get_args
from zoneinfo import ZoneInfo

import asyncpg
from pydantic import TypeAdapter

from schemas import events as ev
from schemas.events import InvoiceIssued
from services.invoicing import bills, domain, stored, zone_contacts
from services.invoicing.address_overlaps import AddressOverlaps
from services.invoicing.billed import CallGroup
from services.invoicing.bills import NO_DOCUMENT, Bill, Bills
from services.invoicing.bills import Contract as _Contract
from services.invoicing.contracts_file import ContractRecord
from services.invoicing.settings import InvoicingSettings
from services.invoicing.settings import supplier as supplier_of
from services.runtime import collector, logs, sql
from services.runtime.db import Jsonb
from services.runtime.runs import Run
from services.runtime.unit import Unit

Q = sql.load(__file__)
log = logs.get(__name__)
SOURCE = "/services/invoicing"
# The columns of a run's invoice rows for COPY: each row is a domain.NewInvoice and the time
# it was made (``(*inv, now)``), so every field goes to the column of its own name, and a
# million rows are built without a call each
INVOICE_COLUMNS = [
    *domain.NewInvoice._fields,
    "created_at",
    "kind",
    "supplier",
    "customer",
    *bills.COLUMNS,
]


class ContractRow(NamedTuple):
    """A ``contracts`` row as ``upsert_contract`` takes a run of them, one array a field."""

    contract: str
    data: str  # the contract as loaded, JSON
    active: bool
    monthly_fee_minor: int
    currency: str
    due_kind: str
    due_value: int
    updated_at: datetime
    terms: str | None  # its services (billed.Terms), JSON; None: its monthly price
    customer: str  # the customer as documents name it, JSON


async def load_contracts(
    unit: Unit, records: list[ContractRecord], operator: str = "contracts file"
) -> tuple[int, int]:
    """Upsert contracts (staged: written by the unit's flush); publish contract.upserted
    only for new or changed ones. A file's one-off items are added once (by their key).
    Contacts a customer changed in the zone stay while the file's are as they were
    (``zone_contacts.keep_zone_contacts``)."""
    changed = 0
    records = await zone_contacts.keep_zone_contacts(unit, records)
    before = {
        r["contract"]: (r["data"], r["terms"], r["customer"])
        for r in await unit.conn.fetch(Q.get_contracts, [r.contract.contract for r in records])
    }
    for r in records:
        text = r.contract.model_dump_json()
        data = json.loads(text)  # compared as values: the stored jsonb has its own key order
        terms = None if r.terms is None else r.terms.model_dump_json()
        customer = r.customer_data()
        row = ContractRow(
            contract=r.contract.contract,
            data=text,
            active=r.contract.active,
            monthly_fee_minor=r.contract.monthly_fee_minor,
            currency=r.contract.currency,
            due_kind=r.due_rule.kind,
            due_value=r.due_rule.value,
            updated_at=unit.now,
            terms=terms,
            customer=json.dumps(customer, ensure_ascii=False),
        )
        unit.stage_row(Q.upsert_contract, r.contract.contract, *row)
        for item in r.one_offs:
            unit.stage(
                Q.add_file_one_off, r.contract.contract, item.key,
                Jsonb(item.model_dump_json(exclude={"key"})), unit.now, operator,
            )  # fmt: skip
        was = before.get(r.contract.contract)
        now = (data, None if terms is None else json.loads(terms), customer)
        if was is None or was[0] != data:
            unit.emit(r.contract.contract, r.contract)
        if was != now:
            before[r.contract.contract] = now  # a repeat later in the file: changed again?
            changed += 1
    return len(records), changed


async def load_contracts_file(
    conn: asyncpg.Connection,
    records: Iterable[ContractRecord],
    now: datetime,
    chunk: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """A contracts file in one transaction, ``chunk`` records a unit of work: the file is
    read as it is written (``contracts_file.records``), in the memory of a chunk, and a
    bad record anywhere (the reader raises) rolls back every chunk before it.
    ``progress`` hears the number of records loaded after each chunk."""
    total = changed = 0
    records = iter(records)
    with collector.paused():
        async with conn.transaction():
            overlaps = AddressOverlaps(conn)
            await overlaps.start()
            while part := list(islice(records, chunk)):
                unit = Unit(conn, now, SOURCE)
                loaded, new = await load_contracts(unit, part)
                await overlaps.stage(part)
                await unit.flush()
                total += loaded
                changed += new
                if progress is not None:
                    progress(total)
            await overlaps.check_and_store()  # before the commit: overlaps refuse the file
    return total, changed


class IssuedJson:
    """The data of invoice.issued for a billing run's invoices, written straight from each
    ``NewInvoice`` and its document's JSON (``Bill.tail``, made once per kind of bill by
    the model's own serializer): byte for byte what ``InvoiceIssued(...).model_dump_json()``
    gives (a test holds them equal), at under half the cost of building and dumping the
    model, a million times a run (docs/performance.md#finding-29).

    It only vouches for what it checks: the result must match the model's shape exactly
    (every symbol, date and amount inside the model's own patterns, so nothing in it needs
    escaping and nothing could be read as another field). An invoice that does not goes
    through the model, which validates it: one the model accepts gets its own JSON, one
    it rejects raises, naming the field."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.account_json = TypeAdapter(str).dump_json(account)
        symbol, day = rb'"[1-9][0-9]{0,9}"', rb'"[0-9]{4}-[0-9]{2}-[0-9]{2}"'
        self.shape = re.compile(
            rb'\{"contract":' + symbol + rb',"invoice_number":"[0-9]+","vs":' + symbol
            + rb',"ss":' + symbol + rb',"period":"[0-9]{4}-[0-9]{2}","issued_on":' + day
            + rb',"due_on":' + day + rb',"amount_minor":[1-9][0-9]*,"currency":"[A-Z]{3}"'
            + rb',"account":' + re.escape(self.account_json)
        )  # fmt: skip

    def __call__(
        self, inv: domain.NewInvoice, tail: bytes = NO_DOCUMENT, kind: InvoiceKind = "periodic"
    ) -> bytes:
        head = (
            f'{{"contract":"{inv.contract}","invoice_number":"{inv.invoice_number}",'
            f'"vs":"{inv.vs}","ss":"{inv.ss}","period":"{inv.period}",'
            f'"issued_on":"{inv.issued_on.isoformat()}","due_on":"{inv.due_on.isoformat()}",'
            f'"amount_minor":{inv.amount_minor},"currency":"{inv.currency}","account":'
        ).encode() + self.account_json
        if self.shape.fullmatch(head):
            return head + tail + KIND_JSON[kind]
        return self.model(inv, tail, kind).model_dump_json().encode()

    def model(
        self, inv: domain.NewInvoice, tail: bytes = NO_DOCUMENT, kind: InvoiceKind = "periodic"
    ) -> InvoiceIssued:
        fields = inv._asdict()
        del fields["fees_minor"]  # inside amount_minor; not part of the event
        document = json.loads(b"{" + tail[1:] + b"}")
        return InvoiceIssued(**fields, account=self.account, **document, kind=kind)


# An invoice's kind (the invoices table's), the last field of invoice.issued.
InvoiceKind = Literal["periodic", "one_off", "topup"]
KIND_JSON: dict[str, bytes] = {k: f',"kind":"{k}"}}'.encode() for k in get_args(InvoiceKind)}


@functools.cache
def issued_json(account: str) -> IssuedJson:
    """The template of one of our accounts, built once (a regular expression each)."""
    return IssuedJson(account)


@dataclass
class BillingRun:
    issued: int  # invoices the run issued
    invoices: list[domain.NewInvoice]  # the first ``keep`` of them in number order (or all)


async def billing_run(
    conn: asyncpg.Connection,
    settings: InvoicingSettings,
    period: str,
    issued_on: date,
    now: datetime,
    keep: int | None = None,
    reader: asyncpg.Connection | None = None,
    progress: Callable[[int], None] | None = None,
) -> BillingRun:
    """A billing run, one transaction per chunk of contracts (``BILLING_BILLING_CHUNK``):
    each chunk's invoices and events commit together and the relay publishes them while
    the next chunk is invoiced. Run it again to complete an interrupted run. (Inside a
    caller's transaction the chunks are savepoints.) Only the first ``keep`` invoices are
    kept for the caller (None: all): a chunk's are dropped once written, so a million
    contracts are billed in the memory of two chunks.

    With a second connection (``reader``) the run is pipelined: chunk *n + 1* is read and
    invoiced on ``reader`` while chunk *n* is written on ``conn``. A chunk is invoiced
    from the sequence the chunk before it leaves, and written only if the year's sequence,
    locked in its transaction, is still there; if another run took numbers meanwhile, the
    chunk is invoiced again under the lock (``_Run.write_chunk``). ``progress`` hears the
    number of invoices issued so far after each chunk."""
    kept: list[domain.NewInvoice] = []
    issued = 0

    def keep_of(invoices: list[domain.NewInvoice]) -> None:
        nonlocal issued, kept
        issued += len(invoices)
        kept += invoices if keep is None else invoices[: max(0, keep - len(kept))]
        if progress is not None:
            progress(issued)

    who = supplier_of(settings)
    supplier_id, supplier_json = stored.supplier_row(who)
    await conn.execute(Q.add_supplier, supplier_id, Jsonb(supplier_json))
    in_transaction = conn.is_in_transaction()
    await conn.execute(Q.hold_run_lock_in_transaction if in_transaction else Q.hold_run_lock)
    try:
        with collector.paused():  # a chunk's objects pile up (a quarter of the run's CPU)
            run = _Run(settings, period, issued_on, now, Bills(who, supplier_id, period, issued_on))
            await run.chunks(conn, reader, keep_of)
        await conn.execute(Q.record_run, period, issued_on, issued, now)
    finally:
        if not in_transaction and not conn.is_closed():
            await conn.execute(Q.release_run_lock)
    return BillingRun(issued, kept)


@dataclass
class _Writes:
    """A chunk's rows: the invoices for COPY, the fees they bill (one row a fee) and the
    one-off items (ids, invoice numbers)."""

    invoices: list[tuple[object, ...]]
    fees: tuple[tuple[str, ...], ...]
    one_offs: tuple[tuple[object, ...], ...] = ()
    calls: tuple[tuple[object, ...], ...] = ()  # postpaid calls (ids, invoice numbers)


@dataclass
class _Chunk:
    """A chunk of a run read and invoiced, its writes and events ready (``_Run.plan``)."""

    contracts: list[_Contract]
    following: str | None  # where the next chunk starts (None: this one is the last)
    last: int  # the year's sequence its numbers follow
    invoices: list[domain.NewInvoice]
    writes: _Writes
    unit: Unit  # its events, on the writing connection


@dataclass(frozen=True)
class _Run:
    """One billing run: what it invoices, and its chunks' steps."""

    settings: InvoicingSettings
    period: str
    issued_on: date
    now: datetime
    bills: Bills

    async def chunks(
        self,
        conn: asyncpg.Connection,
        reader: asyncpg.Connection | None,
        keep_of: Callable[[list[domain.NewInvoice]], None],
    ) -> None:
        """Every chunk: one after the other on ``conn``, or pipelined with ``reader``."""
        if reader is None or conn.is_in_transaction():
            after: str | None = ""
            while after is not None:
                async with conn.transaction():
                    unit = Unit(conn, self.now, SOURCE)
                    invoices, after = await self.chunk(unit, after)
                    await unit.flush()
                keep_of(invoices)
            return
        last = await reader.fetchval(Q.sequence_now, self.issued_on.year) or 0
        chunk = await self.plan(reader, conn, "", last)
        while chunk is not None:
            writing = asyncio.create_task(self.write_chunk(chunk))
            following = None
            try:
                if chunk.following is not None:
                    last = chunk.last + len(chunk.invoices)
                    following = await self.plan(reader, conn, chunk.following, last)
            finally:
                keep_of(await writing)  # never left behind, on an error too
            chunk = following

    async def chunk(self, unit: Unit, after: str) -> tuple[list[domain.NewInvoice], str | None]:
        """Invoice the next chunk of contracts after ``after`` (in contract order) and
        queue their events; returns the invoices and where the next chunk starts (None:
        done).

        Each chunk is its own unit of work in a large run, so the events of a million
        invoices are never held at once and the relay publishes while the run goes on. An
        interrupted run is completed by running it again: invoiced contracts are skipped,
        and every chunk takes the year's sequence under a row lock, so numbers stay
        gapless."""
        contracts, following = await self.facts(unit.conn, after)
        if not contracts:
            return [], None
        # Row lock on the year's sequence: concurrent runs serialise here, numbers stay
        # gapless, and what they invoiced before it was released is seen by ``invoice``.
        last = await unit.conn.fetchval(Q.lock_sequence, self.issued_on.year)
        return await self.locked(unit, contracts, last), following

    async def plan(
        self, reader: asyncpg.Connection, writer: asyncpg.Connection, after: str, last: int
    ) -> _Chunk | None:
        """The next chunk after ``after`` read and invoiced on ``reader`` from sequence
        ``last``, its events queued for ``writer`` (None: no contract left)."""
        contracts, following = await self.facts(reader, after)
        if not contracts:
            return None
        unit = Unit(writer, self.now, SOURCE)
        invoices, writes = await self.invoice(reader, unit, contracts, last)
        return _Chunk(contracts, following, last, invoices, writes, unit)

    async def write_chunk(self, chunk: _Chunk) -> list[domain.NewInvoice]:
        """Write a planned chunk in its own transaction if it still holds: the year's
        sequence is where it was planned from, and its fees are still waiting. Else invoice
        the same contracts again under the lock."""
        conn = chunk.unit.conn
        async with conn.transaction():
            last = await conn.fetchval(Q.lock_sequence, self.issued_on.year)
            if last == chunk.last:
                try:
                    await self.write(conn, last, chunk.writes)
                except _FeesBilledMeanwhile:
                    pass  # nothing of the chunk was written
                else:
                    await chunk.unit.flush()
                    return chunk.invoices
            unit = Unit(conn, self.now, SOURCE)
            invoices = await self.locked(unit, chunk.contracts, last)
            await unit.flush()
            return invoices

    async def locked(
        self, unit: Unit, contracts: list[_Contract], last: int
    ) -> list[domain.NewInvoice]:
        """Invoice and write ``contracts`` with the year's sequence locked at ``last``."""
        invoices, writes = await self.invoice(unit.conn, unit, contracts, last)
        await self.write(unit.conn, last, writes)
        return invoices

    async def facts(
        self, conn: asyncpg.Connection, after: str
    ) -> tuple[list[_Contract], str | None]:
        """The chunk's contracts after ``after`` in contract order, and where the chunk
        after them starts (None: none)."""
        limit = self.settings.billing_chunk
        rows = await conn.fetch(Q.billable_contracts, after, limit)
        rules: dict[tuple[str, int], domain.DueRule] = {}
        contracts = [
            _Contract(
                r["contract"],
                r["active"],
                r["monthly_fee_minor"],
                r["currency"],
                rules.get((r["due_kind"], r["due_value"]))
                or rules.setdefault(
                    (r["due_kind"], r["due_value"]),
                    domain.DueRule(r["due_kind"], r["due_value"]),
                ),
                r["terms"],
                r["country"] or "CZ",
                r["language"] or "cs",
                r["vat_id"] is not None,
                r["customer"],
            )
            for r in rows
        ]
        return contracts, (contracts[-1].contract if len(rows) == limit else None)

    async def invoice(
        self,
        conn: asyncpg.Connection,
        unit: Unit,
        contracts: list[_Contract],
        last: int,
    ) -> tuple[list[domain.NewInvoice], _Writes]:
        """Invoice ``contracts`` from sequence ``last`` (what is already invoiced, the
        fees and one-off items waiting read on ``conn``) and queue their events in
        ``unit``. Each contract's lines come from ``Bills``, made once for every contract
        billed alike."""
        names = [c.contract for c in contracts]
        invoiced = await conn.fetch(Q.invoiced_in_period, self.period, names)
        waiting = await conn.fetch(Q.unbilled_fees, names)
        items = {r["contract"]: r for r in await conn.fetch(Q.unbilled_one_offs, names)}
        calls = await self.calls(conn, contracts)
        fees = {r["contract"]: r["amount_minor"] for r in waiting}
        done = {r["contract"] for r in invoiced}
        bill_of: dict[str, Bill] = {}
        billable: list[domain.BillableContract] = []
        for c in contracts:
            if c.active and c.contract not in done:
                extra = items.get(c.contract)
                waiting_calls = calls.get(c.contract)
                bill = self.bills.of(
                    c,
                    fees.get(c.contract, 0),
                    extra["items"] if extra else (),
                    waiting_calls[0] if waiting_calls else (),
                )
                bill_of[c.contract] = bill
                billable.append(
                    domain.BillableContract(
                        c.contract, c.active, bill.charges_minor, c.currency, c.due_rule
                    )
                )
        invoices = domain.billing_run(
            billable,
            self.period,
            self.issued_on,
            done,
            last,
            fees,
            self.settings.invoice_number_style,
        )
        now = self.now
        customer = {c.contract: c.customer for c in contracts}
        supplier = self.bills.supplier_id
        rows: list[tuple[object, ...]] = [
            (
                *i,
                now,
                "periodic",
                supplier,
                Jsonb(customer[i.contract]),
                *bill_of[i.contract].columns,
            )
            for i in invoices
        ]  # INVOICE_COLUMNS; fmt: skip
        numbers = {i.contract: i.invoice_number for i in invoices}
        billed = [
            (r["contract"], request, numbers[r["contract"]])
            for r in waiting
            if r["contract"] in numbers
            for request in r["request_ids"]
        ]  # exactly the fees summed: one charged since waits for the next run
        one_offs = [
            (ident, numbers[contract])
            for contract, r in items.items()
            if contract in numbers
            for ident in r["ids"]
        ]
        call_ids = [
            (ident, numbers[contract])
            for contract, (_, ids) in calls.items()
            if contract in numbers
            for ident in ids
        ]
        accounts = self.settings.bank_accounts
        for inv in invoices:
            json_of = issued_json(accounts.get(inv.currency, ""))
            unit.emit_json(InvoiceIssued, inv.contract, json_of(inv, bill_of[inv.contract].tail))
        return invoices, _Writes(
            rows,
            tuple(zip(*billed, strict=True)),
            tuple(zip(*one_offs, strict=True)),
            tuple(zip(*call_ids, strict=True)),
        )

    async def calls(
        self, conn: asyncpg.Connection, contracts: list[_Contract]
    ) -> dict[str, tuple[list[CallGroup], list[int]]]:
        """Each contract's postpaid calls waiting that started before the period's start
        (its first midnight in the operator's time zone), per month and destination, and
        their ids. Calls in another currency than the contract's stay waiting (a price
        list in the wrong currency is the operator's to fix; logged)."""
        country = self.bills.supplier.address.country
        zone = domain.OPERATOR_TIMEZONES.get(country, "Europe/Prague")
        first = date(self.bills.year, self.bills.month, 1)
        start = datetime.combine(first, time(0), tzinfo=ZoneInfo(zone))
        currency = {c.contract: c.currency for c in contracts}
        found: dict[str, tuple[list[CallGroup], list[int]]] = {}
        for r in await conn.fetch(Q.unbilled_calls, list(currency), start, zone):
            if r["currency"] != currency[r["contract"]]:
                log.warning(
                    "postpaid calls in another currency than the contract's left unbilled",
                    contract=r["contract"], currency=r["currency"], calls=r["calls"],
                )  # fmt: skip
                continue
            groups, ids = found.setdefault(r["contract"], ([], []))
            groups.append(
                CallGroup(r["month"], r["destination"], r["calls"], r["seconds"], r["price_minor"])
            )
            ids += r["ids"]
        return found

    async def write(self, conn: asyncpg.Connection, last: int, w: _Writes) -> None:
        """A chunk's rows, with the year's sequence locked at ``last``: a number an
        invoice. The fees and one-off items are those of these invoices."""
        if not w.invoices:
            return
        if w.fees or w.one_offs or w.calls:  # first, undone alone if not all there any more
            async with conn.transaction():
                if w.fees:
                    marked = await conn.execute(Q.mark_fees_billed, *w.fees)
                    if marked != f"UPDATE {len(w.fees[0])}":
                        raise _FeesBilledMeanwhile(sorted(set(w.fees[0])))
                if w.one_offs:
                    marked = await conn.execute(Q.mark_one_offs_billed, *w.one_offs)
                    if marked != f"UPDATE {len(w.one_offs[0])}":
                        raise _FeesBilledMeanwhile(sorted(set(w.one_offs[1])))  # type: ignore[arg-type]
                if w.calls:
                    marked = await conn.execute(Q.mark_calls_billed, *w.calls)
                    if marked != f"UPDATE {len(w.calls[0])}":
                        raise _FeesBilledMeanwhile(sorted(set(w.calls[1])))  # type: ignore[arg-type]
        await conn.copy_records_to_table("invoices", records=w.invoices, columns=INVOICE_COLUMNS)
        await conn.execute(Q.set_sequence, self.issued_on.year, last + len(w.invoices))


class _FeesBilledMeanwhile(Exception):
    """Late fees or one-off items a chunk was planned with (read on the reading connection,
    not locked for the write) were billed meanwhile by a run of another year: the chunk is
    invoiced again. Under a write's own transaction they are locked as read, so it cannot
    happen there."""

    def __init__(self, which: list[str]) -> None:
        super().__init__(f"late fees or one-off items of {which} were billed by another run")


async def on_calls_rated(unit: Unit, run: Run[ev.CallsRated]) -> None:
    """Postpaid calls, each call id once per contract, for the next periodic invoice;
    prepaid ones are the credit's (voip), never invoiced."""
    calls = {
        (d.contract, c.call_id): (c, d.import_id) for d in run for c in d.calls if not c.prepaid
    }
    await unit.conn.execute(
        Q.add_postpaid_calls,
        [k[0] for k in calls],
        [k[1] for k in calls],
        [c.started_at for c, _ in calls.values()],
        [c.seconds for c, _ in calls.values()],
        [c.destination for c, _ in calls.values()],
        [c.price_minor for c, _ in calls.values()],
        [c.currency for c, _ in calls.values()],
        [i for _, i in calls.values()],
    )


async def on_settled(unit: Unit, run: Run[ev.InvoiceSettled]) -> None:
    for data in run:
        unit.stage_row(
            Q.mark_paid, data.invoice_number, data.invoice_number, data.paid_minor, data.settled_on
        )


async def on_fee_charged(unit: Unit, run: Run[ev.FeeCharged]) -> None:
    for data in run:
        await unit.conn.execute(
            Q.record_fee,
            data.contract,
            data.request_id,
            data.invoice_number,
            data.amount_minor,
            data.currency,
            unit.now,
        )


async def on_reopened(unit: Unit, run: Run[ev.InvoiceReopened]) -> None:
    for data in run:
        unit.stage(Q.mark_reopened, data.invoice_number, data.paid_minor)


async def on_partially_paid(unit: Unit, run: Run[ev.InvoicePartiallyPaid]) -> None:
    for data in run:
        unit.stage_row(
            Q.mark_partially_paid, data.invoice_number, data.invoice_number, data.paid_minor
        )
