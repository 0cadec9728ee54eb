"""What pairing decides from, read from payments' tables: the facts of a run of movements
(``run``), what one movement needs beyond them (``more``, as ``domain`` asks), and the facts
of an operator's assignment and of a new invoice's credit. Reads only; rows locked where the
decision will change them. ``domain`` decides, ``ledger`` writes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

import asyncpg

from schemas import events as ev
from services.payments import domain
from services.runtime import sql

Q = sql.load(__file__)
T = TypeVar("T")


def movement(data: ev.PaymentReceived) -> domain.Movement:
    return domain.Movement(
        data.account,
        data.bank_tx_id,
        data.booked_on,
        data.amount_minor,
        data.currency,
        data.vs,
        data.ss,
        data.counterparty_account,
        data.message,
    )


def _of(cls: type[T], row: Any) -> T:
    """A domain record from a row with a column for each of its fields."""
    return cls(*(row[f.name] for f in dataclasses.fields(cls)))  # type: ignore[arg-type]


def _open_invoice(row: Any) -> domain.OpenInvoice:
    return _of(domain.OpenInvoice, row)


def _booked(row: Any) -> domain.BookedCredit:
    return _of(domain.BookedCredit, row)


def _contract(row: Any) -> domain.ContractInfo | None:
    return domain.ContractInfo(row["contract"], row["currency"]) if row else None


async def run(conn: asyncpg.Connection, movements: Sequence[domain.Movement]) -> domain.RunFacts:
    """The facts of a run for rules 1-2, in one statement (``batch_facts`` says what)."""
    facts = await conn.fetchrow(
        Q.batch_facts,
        sorted({m.vs for m in movements if m.vs is not None}),
        sorted({m.ss for m in movements if m.ss is not None}),
        [m.account for m in movements],
        [m.bank_tx_id for m in movements],
        [m.currency for m in movements],
        [m.amount_minor for m in movements],
    )
    contracts = {c: domain.ContractInfo(c, currency) for c, currency in facts["contracts"]}
    invoices: dict[str, domain.OpenInvoice] = {}
    by_ss: dict[str, str] = {}
    by_contract: dict[str, list[str]] = {}
    for row in facts["invoices"]:  # (invoice_number, contract, ss, due_on, amount, ...)
        inv = domain.OpenInvoice(*row)
        invoices[inv.invoice_number] = inv
        by_ss[inv.ss] = inv.invoice_number
        by_contract.setdefault(inv.contract, []).append(inv.invoice_number)
    return domain.RunFacts(
        contracts=contracts,
        invoices=invoices,
        by_ss=by_ss,
        by_contract=by_contract,
        loaded=set(contracts) | set(by_contract),
        balance=dict(facts["balances"]),
        known=set(facts["known"]),
        waiting=set(facts["waiting"]),
    )


async def more(
    conn: asyncpg.Connection,
    facts: domain.RunFacts,
    need: domain.Need,
    rest: Sequence[domain.Movement],
) -> domain.RunFacts:
    """``facts`` with what ``need`` asks for added; for ``run``, the facts of ``rest`` (the
    movements from the one in need on) loaded again."""
    mv = need.movement
    if need.what == "run":
        return await run(conn, rest)
    extra = facts.more_for(mv)
    if extra is domain.NOTHING_MORE:
        extra = facts.more = domain.More((mv.account, mv.bank_tx_id))
    if need.what == "waiting":
        rows = await conn.fetch(Q.waiting_reversals, mv.account, mv.currency, -mv.amount_minor)
        extra.waiting = [_booked(r) for r in rows]
    elif need.what == "reversible":
        rows = await conn.fetch(Q.reversible_credits, mv.account, mv.currency, -mv.amount_minor)
        extra.reversible = [_booked(r) for r in rows]
    elif need.what == "named":
        extra.named = await _named(conn, mv)
    elif need.what == "contract":
        assert need.contract is not None
        await _add_contract(conn, facts, need.contract)
    elif need.what == "reversal":
        assert need.original is not None
        extra.reversal = await _reversal(conn, need.original)
    return facts


async def _named(conn: asyncpg.Connection, mv: domain.Movement) -> domain.Lookup:
    """Rule 3's facts: what the message's numbers and the payer's account name."""
    tokens = domain.message_tokens(mv.message)
    invoices, contracts = [], []
    if tokens:
        invoices = [_open_invoice(r) for r in await conn.fetch(Q.invoices_named, tokens)]
        contracts = [
            domain.ContractInfo(r["contract"], r["currency"])
            for r in await conn.fetch(Q.contracts_named, tokens)
        ]
    payer = None
    if mv.counterparty_account:
        payer = _contract(await conn.fetchrow(Q.payer_contract, mv.counterparty_account))
    return domain.Lookup(None, None, invoices, contracts, payer)


async def _add_contract(conn: asyncpg.Connection, facts: domain.RunFacts, contract: str) -> None:
    """A contract's open invoices and credit, locked, into the run's facts."""
    numbers = []
    for row in await conn.fetch(Q.open_invoices, contract):
        inv = _open_invoice(row)
        facts.invoices[inv.invoice_number] = inv
        facts.by_ss[inv.ss] = inv.invoice_number
        numbers.append(inv.invoice_number)
    facts.by_contract[contract] = numbers
    facts.balance[contract] = await conn.fetchval(Q.credit_balance, contract)
    facts.loaded.add(contract)


async def _reversal(
    conn: asyncpg.Connection, original: domain.BookedCredit
) -> domain.ReversalFacts:
    """What ``original`` paid, directly and through its credit, locked."""
    row = await conn.fetchrow(Q.get_bank_tx, original.account, original.bank_tx_id)
    if row["status"] != "matched":
        return domain.NEVER_PAIRED
    contract = row["contract"]
    allocations = [
        (a["id"], a["invoice_number"], a["amount_minor"])
        for a in await conn.fetch(Q.live_allocations_of, original.account, original.bank_tx_id)
    ]
    invoices = {}
    for _, number, _ in allocations:
        if number not in invoices:
            invoices[number] = _open_invoice(await conn.fetchrow(Q.get_invoice, number))
    lot = await conn.fetchval(Q.credit_lot_of, original.account, original.bank_tx_id)
    balance = await conn.fetchval(Q.credit_balance, contract)
    return domain.ReversalFacts(contract, allocations, invoices, lot or 0, balance)


async def assignment(conn: asyncpg.Connection, request: domain.Assignment) -> domain.AssignFacts:
    """The movement, contract and invoice an operator's assignment names, locked."""
    row = await conn.fetchrow(Q.get_bank_tx, request.account, request.bank_tx_id)
    mv = _of(domain.Movement, row) if row is not None else None
    contract = _contract(await conn.fetchrow(Q.get_contract, request.contract))
    invoice = None
    if request.invoice_number is not None:
        irow = await conn.fetchrow(Q.get_invoice, request.invoice_number)
        invoice = _open_invoice(irow) if irow else None
    open_invoices = [_open_invoice(r) for r in await conn.fetch(Q.open_invoices, request.contract)]
    balance = await conn.fetchval(Q.credit_balance, request.contract)
    return domain.AssignFacts(
        mv, row["status"] if row else None, contract, invoice, open_invoices, balance
    )


async def credit_for(
    conn: asyncpg.Connection, data: ev.InvoiceIssued
) -> tuple[list[domain.CreditLot], domain.OpenInvoice | None]:
    """A new invoice's contract's unspent credit lots, locked, and the invoice (None when
    there is no credit to pay it with)."""
    lots = [
        domain.CreditLot(r["account"], r["bank_tx_id"], r["remaining_minor"], r["id"])
        for r in await conn.fetch(Q.credit_lots, data.contract)
    ]
    if not lots:
        return [], None
    return lots, _open_invoice(await conn.fetchrow(Q.get_invoice, data.invoice_number))


@dataclasses.dataclass(frozen=True)
class CreditNoteFacts:
    invoice: domain.OpenInvoice
    settled: bool
    credited_minor: int  # by the notes applied so far
    paid_by: list[domain.PaidBy]


async def credit_note(
    conn: asyncpg.Connection, data: ev.CreditNoteIssued
) -> CreditNoteFacts | None:
    """The invoice a credit note credits, locked, and who paid it (None when payments does
    not know the invoice)."""
    row = await conn.fetchrow(Q.invoice_to_credit, data.invoice_number)
    if row is None:
        return None
    paid_by = [_of(domain.PaidBy, r) for r in await conn.fetch(Q.paid_by, data.invoice_number)]
    return CreditNoteFacts(_open_invoice(row), row["settled"], row["credited_minor"], paid_by)
