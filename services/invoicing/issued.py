"""Invoices and credit notes once issued: read back from the tables into the documents they
were (their PDF and ISDOC made again byte for byte), credit notes issued on them, one-off
items added to a contract, and what is still to deliver. Each use case runs inside the
caller's transaction (a unit of work), so what it writes and emits commits together."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import asyncpg

from schemas.events import CreditNoteIssued, InvoiceCancelled, InvoiceIssued
from services.invoicing import billed, bills, documents, isdoc, pdf, stored, vat
from services.invoicing.domain import DueRule, NewInvoice, invoice_number
from services.invoicing.service import INVOICE_COLUMNS, issued_json
from services.invoicing.settings import InvoicingSettings
from services.invoicing.settings import supplier as supplier_of
from services.runtime import sql
from services.runtime.audit import UnknownContract
from services.runtime.db import Jsonb
from services.runtime.errors import BadInput, NotFound
from services.runtime.unit import Unit

Q = sql.load(__file__)
Format = Literal["pdf", "isdoc"]


class UnknownDocument(NotFound):
    def __init__(self, number: str) -> None:
        super().__init__(f"no invoice or credit note {number}")


def is_credit_note(number: str) -> bool:
    return number.startswith("D")


async def invoice_row(conn: asyncpg.Connection, number: str, lock: bool = False) -> Any:
    row = await conn.fetchrow(Q.lock_invoice if lock else Q.get_invoice, number)
    if row is None:
        raise UnknownDocument(number)
    return row


def invoice_document(row: Mapping[str, Any]) -> documents.Document:
    """The document of a stored invoice; one without (why: ``no_document``) is refused."""
    if row["lines"] is None:
        raise BadInput(f"invoice {row['invoice_number']} has no document: {row['no_document']}")
    return stored.invoice_document(row, row["supplier_data"])


async def document(conn: asyncpg.Connection, number: str) -> documents.Document:
    """Invoice or credit note ``number`` as the document it was issued."""
    if not is_credit_note(number):
        return invoice_document(await invoice_row(conn, number))
    note = await conn.fetchrow(Q.get_credit_note, number)
    if note is None:
        raise UnknownDocument(number)
    original = invoice_document(await invoice_row(conn, note["invoice_number"]))
    return stored.credit_note_document(note, original)


def render(doc: documents.Document, kind: Format) -> bytes:
    """The PDF or ISDOC of ``doc``; a document the law would not accept (a customer
    without an address) is refused, naming what is missing."""
    problems = documents.customer_problems(doc.customer)
    if problems:
        raise BadInput(
            f"{doc.number}: the document cannot name its customer (contract {doc.contract}): "
            + "; ".join(problems)
            + " (add it to the contract in the contracts file)"
        )
    return pdf.render(doc) if kind == "pdf" else isdoc.write(doc)


# --- credit notes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Credited:
    note: documents.Document
    event: CreditNoteIssued


async def issue_credit_note(
    unit: Unit,
    settings: InvoicingSettings,
    number: str,
    issued_on: date,
    reason: str,
    asked: Sequence[tuple[int, int | None]] | None,
    operator: str,
) -> Credited:
    """A credit note for lines of invoice ``number``: ``asked`` names each line and how
    much of its base to credit (None: all of it not yet credited), or is None for all
    that is left of the invoice. Numbered in the credit notes' own gapless yearly series
    in this transaction.

    Locks, in this order (every issuer takes them so, hence no deadlock): the invoice's
    row, so a second note on it sees what the first credited; then the year's series, so
    two notes of the year take consecutive numbers, and a note refused after taking its
    number rolls the series back with it."""
    conn = unit.conn
    row = await invoice_row(conn, number, lock=True)
    original = invoice_document(row)
    earlier = [
        stored.credit_note_document(n, original)
        for n in await conn.fetch(Q.credit_notes_of, number)
    ]
    already = documents.credited_per_line(original, earlier)
    parts = None
    if asked is not None:
        bases = {x.number: x.base_minor for x in original.lines}
        parts = [
            documents.CreditPart(n, bases.get(n, 0) - already.get(n, 0) if a is None else a)
            for n, a in asked
        ]
    year = issued_on.year
    last = await conn.fetchval(Q.lock_credit_sequence, year)
    note_number = documents.credit_note_number(
        year, documents.next_sequence(year, last, year), settings.invoice_number_style
    )
    try:
        note = documents.build_credit_note(original, note_number, issued_on, reason, parts, already)
    except documents.DocumentError as e:
        raise BadInput(f"credit note on {number}: {e}") from None
    lines, recap = stored.lines_json(note.lines), stored.recap_json(note.recap)
    await conn.execute(
        Q.insert_credit_note, note.number, number, original.contract, issued_on, note.reason,
        Jsonb(lines.decode()), Jsonb(recap.decode()), note.total_minor, original.currency,
        unit.now, operator,
    )  # fmt: skip
    await conn.execute(Q.set_credit_sequence, year, last + 1)
    credited = sum(n.total_minor for n in earlier) + note.total_minor
    event = CreditNoteIssued(
        contract=original.contract,
        credit_note_number=note.number,
        invoice_number=number,
        ss=original.ss or original.vs,
        issued_on=issued_on,
        reason=note.reason or reason,
        lines=[stored.line_model(x) for x in note.lines],
        vat=[stored.recap_model(r) for r in note.recap],
        amount_minor=note.total_minor,
        currency=original.currency,
        invoice_amount_minor=original.total_minor,
        credited_minor=credited,
        due_minor=original.total_minor - credited,
    )
    unit.emit(original.contract, event)
    return Credited(note, event)


async def cancel_invoice(
    unit: Unit,
    settings: InvoicingSettings,
    number: str,
    issued_on: date,
    reason: str,
    operator: str,
) -> Credited:
    """Cancel invoice ``number``: a full credit note of all that is left of it, with the
    reason (``issue_credit_note``: payments and dunning follow it as they follow any), and
    ``invoice.cancelled`` for the zone. Never a deletion: the invoice and its document stay,
    and the note says what was taken back and why. An invoice credited in full already is
    refused (nothing left to cancel)."""
    done = await issue_credit_note(unit, settings, number, issued_on, reason, None, operator)
    e = done.event
    unit.emit(
        e.contract,
        InvoiceCancelled(contract=e.contract, invoice_number=number, ss=e.ss, reason=e.reason),
    )
    return done


# --- one-off items ---------------------------------------------------------------------------


async def add_one_off(
    unit: Unit,
    settings: InvoicingSettings,
    contract: str,
    item: billed.OneOff,
    issued_on: date,
    operator: str,
    key: str | None = None,
) -> str | None:
    """Add a one-off item to ``contract``: for its next invoice, or (``item.invoice ==
    "own"``) at once on an invoice of its own, numbered in the year's invoice series in this
    transaction. Returns that invoice's number (None: the next invoice carries it)."""
    conn = unit.conn
    row = await conn.fetchrow(Q.billable_contract, contract)
    if row is None:
        raise UnknownContract(contract, "invoicing")
    key = key or f"cli-{uuid.uuid4()}"
    text = Jsonb(item.model_dump_json())
    if item.invoice == "next":
        await conn.fetchval(Q.add_one_off, contract, key, text, unit.now, operator, None)
        return None
    try:
        inv = await own_invoice(unit, settings, row, [item.item()], issued_on, "one_off")
    except documents.DocumentError as e:
        raise BadInput(f"contract {contract}: the item cannot be invoiced: {e}") from None
    if inv is None:
        raise BadInput(f"contract {contract}: an invoice of its own needs a price above 0")
    await conn.fetchval(Q.add_one_off, contract, key, text, unit.now, operator, inv.invoice_number)
    return inv.invoice_number


OwnKind = Literal["one_off", "topup"]  # an invoice of its own (InvoiceKind's)


async def own_invoice(
    unit: Unit,
    settings: InvoicingSettings,
    row: Mapping[str, Any],
    items: list[documents.Item],
    issued_on: date,
    kind: OwnKind,
    due_on: date | None = None,
    prices_include_vat: bool | None = None,
) -> NewInvoice | None:
    """An invoice of its own for ``items`` of the contract ``row`` (its ``contract_billing``
    row), issued now: numbered in the year's invoice series in this transaction (its row
    lock, as a billing run's chunk takes it), its tax point its issue date, due by the
    contract's rule unless ``due_on`` says, and its ``invoice.issued`` queued. The prices
    include VAT as the contract's do, unless ``prices_include_vat`` says. None: the items
    come to nothing (nothing written); ``documents.DocumentError``: they cannot be
    invoiced (nothing written)."""
    conn = unit.conn
    contract = row["contract"]
    who = supplier_of(settings)
    supplier_id, supplier_json = stored.supplier_row(who)
    period = f"{issued_on.year:04d}-{issued_on.month:02d}"
    language = row["language"] if row["language"] in vat.LANGUAGES else "en"
    terms = billed.Terms.model_validate_json(row["terms"]) if row["terms"] else billed.Terms()
    if prices_include_vat is None:
        prices_include_vat = terms.prices_include_vat
    made = bills.Bills(who, supplier_id, period, issued_on)
    bill = made.bill(
        items, row["country"] or "CZ", row["vat_id"] is not None, row["currency"],
        language, prices_include_vat, tax_point_on=issued_on,
    )  # fmt: skip
    if bill.charges_minor <= 0:
        return None
    await conn.execute(Q.add_supplier, supplier_id, Jsonb(supplier_json))
    last = await conn.fetchval(Q.lock_sequence, issued_on.year)
    number = invoice_number(issued_on.year, last + 1, settings.invoice_number_style)
    if due_on is None:
        due_on = DueRule(row["due_kind"], row["due_value"]).due_on(issued_on)
    inv = NewInvoice(
        contract, number, contract, number, period, issued_on, due_on, bill.charges_minor,
        row["currency"],
    )  # fmt: skip
    record = (*inv, unit.now, kind, supplier_id, Jsonb(row["customer"]), *bill.columns)
    await conn.copy_records_to_table("invoices", records=[record], columns=INVOICE_COLUMNS)
    await conn.execute(Q.set_sequence, issued_on.year, last + 1)
    account = settings.bank_accounts.get(inv.currency, "")
    unit.emit_json(InvoiceIssued, contract, issued_json(account)(inv, bill.tail, kind))
    return inv


async def undelivered(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(Q.undelivered)]
