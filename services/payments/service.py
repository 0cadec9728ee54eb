"""Payments handlers: keep the invoice read model, pair movements, apply credit, reverse,
and the operators' manual assignment. The decisions are ``domain``'s; this module looks
up the facts, stores the outcome and emits the events, in the caller's transaction."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from schemas import events as ev
from schemas.envelope import CloudEvent
from services.payments import domain
from services.payments.settings import PaymentsSettings
from services.runtime import sql
from services.runtime.db import Jsonb
from services.runtime.errors import EX_NOINPUT, BadInput, NotFound
from services.runtime.runs import Run
from services.runtime.unit import Unit, columns

Q = sql.load(__file__)


class AssignError(BadInput):
    """An operator's assignment that cannot be done, and why (exit 65)."""


class Unknown(AssignError, NotFound):
    """The movement, contract or invoice named is not one payments knows (exit 66)."""

    exit_code = EX_NOINPUT


def _open_invoice(row: Any) -> domain.OpenInvoice:
    return domain.OpenInvoice(
        row["invoice_number"],
        row["contract"],
        row["ss"],
        row["due_on"],
        row["amount_minor"],
        row["paid_minor"],
        row["currency"],
    )


def _booked(row: Any) -> domain.BookedCredit:
    return domain.BookedCredit(
        row["account"],
        row["bank_tx_id"],
        row["booked_on"],
        row["amount_minor"],
        row["currency"],
        row["vs"],
        row["ss"],
        row["counterparty_account"],
    )


def _movement(data: ev.PaymentReceived) -> domain.Movement:
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


class BankTx(NamedTuple):
    """A ``bank_transactions`` row as ``insert_bank_tx`` takes it ($1-$18 in this order) and
    ``insert_matched_txs`` a batch of them (one array a field). A tuple, so it goes to
    asyncpg as it is; built by name, so no field lands in another's column."""

    account: str
    bank_tx_id: str
    event_id: uuid.UUID
    booked_on: date
    amount_minor: int
    currency: str
    vs: str | None
    ss: str | None
    data: Jsonb  # the event's data as received
    contract: str | None
    status: str  # matched, unmatched (reversed and reversal come later, by update)
    reason_code: str | None  # why unmatched
    reason: str | None
    received_at: datetime
    counterparty_account: str | None
    counterparty_name: str | None
    message: str | None
    rule: str | None  # the rule that paired it


def _bank_tx(
    unit: Unit,
    event: CloudEvent,
    data: ev.PaymentReceived,
    status: str,
    contract: str | None = None,
    unmatched: domain.Unmatched | None = None,
    rule: str | None = None,
) -> BankTx:
    return BankTx(
        account=data.account,
        bank_tx_id=data.bank_tx_id,
        event_id=event.id,
        booked_on=data.booked_on,
        amount_minor=data.amount_minor,
        currency=data.currency,
        vs=data.vs,
        ss=data.ss,
        data=Jsonb(data.model_dump_json()),
        contract=contract,
        status=status,
        reason_code=unmatched.code if unmatched else None,
        reason=unmatched.reason if unmatched else None,
        received_at=unit.now,
        counterparty_account=data.counterparty_account,
        counterparty_name=data.counterparty_name,
        message=data.message,
        rule=rule,
    )


@dataclass
class _Batch:
    """The facts of a stretch of plain payments (positive, with a VS) of one run, fetched
    at once and kept current as they are paired, and the writes of those pairings,
    written at once. Anything else (a debit, an unknown VS, a payment a waiting reversal
    may return) first writes these out and drops the facts, then takes the one-by-one
    path, so both paths always read the same state."""

    contracts: dict[str, domain.ContractInfo]
    invoices: dict[str, domain.OpenInvoice]  # current state of the fetched open invoices
    settled: set[str]
    by_ss: dict[str, str]
    by_contract: dict[str, list[str]]  # open invoice numbers, (due_on, number) order
    known: set[tuple[str, str]]  # (account, bank_tx_id) stored before or in this batch
    waiting: set[tuple[str, str, int]]  # (account, currency, amount) a reversal may return
    balance: dict[str, int]
    txs: list[BankTx] = field(default_factory=list)
    allocations: list[tuple[Any, ...]] = field(default_factory=list)
    lots: list[tuple[Any, ...]] = field(default_factory=list)
    paid: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # final state per invoice

    def open_of(self, contract: str) -> list[domain.OpenInvoice]:
        return [
            self.invoices[n] for n in self.by_contract.get(contract, []) if n not in self.settled
        ]


def _plain(data: ev.PaymentReceived) -> bool:
    return data.amount_minor > 0 and data.vs is not None


class Payments:
    def __init__(self, settings: PaymentsSettings) -> None:
        self.settings = settings
        self.phone_vs = settings.phone_vs_pattern
        re.compile(self.phone_vs)  # fail at start, not on the first payment

    def tolerance(self, currency: str) -> int:
        return self.settings.rounding_tolerance.get(currency, 0)

    # --- read model ------------------------------------------------------------------------

    # A run of contract or invoice events (a contracts load, a billing run) is applied at
    # once, set-based.

    async def on_contract(self, unit: Unit, run: Run[ev.ContractUpserted]) -> None:
        last = {d.contract: d.currency for d in run}  # a repeat in the run: the last wins
        await unit.conn.execute(Q.upsert_contracts, list(last), list(last.values()))

    async def on_invoice_issued(self, unit: Unit, run: Run[ev.InvoiceIssued]) -> None:
        conn = unit.conn
        inserted = {
            r["invoice_number"]
            for r in await conn.fetch(
                Q.insert_invoices,
                [d.invoice_number for d in run],
                [d.contract for d in run],
                [d.ss for d in run],
                [d.due_on for d in run],
                [d.amount_minor for d in run],
                [d.currency for d in run],
            )
        }
        with_credit = {
            r["contract"]
            for r in await conn.fetch(Q.contracts_with_credit, sorted({d.contract for d in run}))
        }
        for d in run:  # in order: an earlier invoice spends the credit first
            if d.invoice_number in inserted and d.contract in with_credit:
                inserted.discard(d.invoice_number)
                await self._pay_from_credit(unit, d)

    async def _pay_from_credit(self, unit: Unit, data: ev.InvoiceIssued) -> None:
        """A new invoice of a contract with credit is paid from it at once."""
        conn = unit.conn
        lots = [
            domain.CreditLot(r["account"], r["bank_tx_id"], r["remaining_minor"], r["id"])
            for r in await conn.fetch(Q.credit_lots, data.contract)
        ]
        if not lots:
            return
        row = await conn.fetchrow(Q.get_invoice, data.invoice_number)
        used, outcome = domain.apply_credit_lots(
            lots, _open_invoice(row), self.tolerance(data.currency)
        )
        if outcome is None:
            return
        for lot, amount in used:
            await conn.execute(Q.spend_credit_lot, lot.order, amount)
            await conn.execute(
                Q.insert_allocation,
                lot.account,
                lot.bank_tx_id,
                data.invoice_number,
                amount,
                "credit",
            )
        await self._record_outcomes(unit, [outcome], unit.now.date())

    # --- incoming movements ----------------------------------------------------------------

    async def on_payment_received(self, unit: Unit, run: Run[ev.PaymentReceived]) -> None:
        """Pair a run of movements in order. Each stretch of plain payments is paired from
        facts fetched once for it (``_Batch``); one those facts cannot pair, and any other
        movement, first has what the stretch paired written out, then takes the
        one-by-one path."""
        batch: _Batch | None = None
        for i, (event, data) in enumerate(run.pairs()):
            mv = _movement(data)
            if _plain(data):
                if batch is None:
                    end = i
                    while end < len(run) and _plain(run.data[end]):
                        end += 1
                    batch = await self._fetch_batch(unit, run.data[i:end])
                if self._pair_in_batch(unit, event, data, mv, batch):
                    continue
            if batch is not None:
                await self._finish_batch(unit, batch)
                batch = None
            if mv.amount_minor < 0:
                await self._debit(unit, event, data, mv)
            else:
                await self._credit(unit, event, data, mv)
        if batch is not None:
            await self._finish_batch(unit, batch)

    async def _store(
        self,
        unit: Unit,
        event: CloudEvent,
        data: ev.PaymentReceived,
        status: str,
        contract: str | None = None,
        unmatched: domain.Unmatched | None = None,
        rule: str | None = None,
    ) -> bool:
        stored = await unit.conn.fetchval(
            Q.insert_bank_tx, *_bank_tx(unit, event, data, status, contract, unmatched, rule)
        )
        return stored is not None  # None: the same bank movement again, already handled

    async def _unmatched(
        self, unit: Unit, event: CloudEvent, data: ev.PaymentReceived, why: domain.Unmatched
    ) -> None:
        if not await self._store(unit, event, data, "unmatched", unmatched=why):
            return
        unit.emit(
            data.vs or data.bank_tx_id,
            ev.PaymentUnmatched(
                account=data.account,
                bank_tx_id=data.bank_tx_id,
                booked_on=data.booked_on,
                amount_minor=data.amount_minor,
                currency=data.currency,
                vs=data.vs,
                ss=data.ss,
                reason_code=why.code,
                reason=why.reason,
            ),
        )

    async def _debit(
        self, unit: Unit, event: CloudEvent, data: ev.PaymentReceived, mv: domain.Movement
    ) -> None:
        conn = unit.conn
        rows = await conn.fetch(Q.reversible_credits, mv.account, mv.currency, -mv.amount_minor)
        original = domain.reversed_credit(mv, [_booked(r) for r in rows])
        if original is None:
            why = domain.Unmatched(
                "debit", f"outgoing movement of {mv.amount_minor} is not a payment"
            )
            await self._unmatched(unit, event, data, why)
            return
        if not await self._store(unit, event, data, "unmatched"):
            return
        await self._reverse(unit, original, mv.bank_tx_id, mv.booked_on)

    async def _credit(
        self, unit: Unit, event: CloudEvent, data: ev.PaymentReceived, mv: domain.Movement
    ) -> None:
        conn = unit.conn
        if mv.amount_minor == 0:
            why = domain.Unmatched("invalid-amount", "a movement of zero")
            await self._unmatched(unit, event, data, why)
            return
        # A reversal that arrived before its payment (statements imported out of order).
        waiting = await conn.fetch(Q.waiting_reversals, mv.account, mv.currency, -mv.amount_minor)
        this = domain.BookedCredit.of(mv)
        for row in waiting:
            debit = _booked(row)
            if domain.reverses(debit, this):
                if not await self._store(unit, event, data, "unmatched"):
                    return
                await self._reverse(unit, this, debit.bank_tx_id, debit.booked_on)
                return
        facts = await self._lookup(unit, mv)
        found = domain.identify(mv, facts, self.phone_vs)
        if isinstance(found, domain.Unmatched):
            await self._unmatched(unit, event, data, found)
            return
        open_invoices = [
            _open_invoice(r) for r in await conn.fetch(Q.open_invoices, found.contract.contract)
        ]
        decision = self._match(mv, found, open_invoices)
        if isinstance(decision, domain.Matched) and decision.credit_minor > 0:
            balance = await conn.fetchval(Q.credit_balance, decision.contract)
            decision = domain.within_credit_limit(decision, balance)
        if isinstance(decision, domain.Unmatched):  # currency checked by identify already
            await self._unmatched(unit, event, data, decision)
            return
        if not await self._store(
            unit, event, data, "matched", contract=decision.contract, rule=decision.rule
        ):
            return
        await self._apply(unit, mv, decision)

    def _match(
        self,
        mv: domain.Movement,
        found: domain.Identified,
        open_invoices: list[domain.OpenInvoice],
    ) -> domain.Matched | domain.Unmatched:
        # the locked, current row of the invoice to pay first
        first = next(
            (
                i
                for i in open_invoices
                if found.first and i.invoice_number == found.first.invoice_number
            ),
            None,
        )
        return domain.match(
            mv, found.contract, open_invoices, first, self.tolerance(mv.currency), how=found.how
        )

    async def _lookup(self, unit: Unit, mv: domain.Movement) -> domain.Lookup:
        conn = unit.conn
        by_vs = None
        if mv.vs is not None:
            row = await conn.fetchrow(Q.get_contract, mv.vs)
            by_vs = domain.ContractInfo(row["contract"], row["currency"]) if row else None
        by_ss = None
        if mv.ss is not None:
            row = await conn.fetchrow(Q.open_invoice_by_ss, mv.ss)
            by_ss = _open_invoice(row) if row else None
        if by_vs is not None or (mv.vs is None and by_ss is not None):
            return domain.Lookup(by_vs, by_ss)
        tokens = domain.message_tokens(mv.message)
        named_invoices = (
            [_open_invoice(r) for r in await conn.fetch(Q.invoices_named, tokens)] if tokens else []
        )
        named_contracts = (
            [
                domain.ContractInfo(r["contract"], r["currency"])
                for r in await conn.fetch(Q.contracts_named, tokens)
            ]
            if tokens
            else []
        )
        payer = None
        if mv.counterparty_account:
            row = await conn.fetchrow(Q.payer_contract, mv.counterparty_account)
            payer = domain.ContractInfo(row["contract"], row["currency"]) if row else None
        return domain.Lookup(by_vs, by_ss, named_invoices, named_contracts, payer)

    async def _apply(self, unit: Unit, mv: domain.Movement, decision: domain.Matched) -> None:
        conn = unit.conn
        for a in decision.allocations:
            await conn.execute(
                Q.insert_allocation,
                mv.account,
                mv.bank_tx_id,
                a.invoice.invoice_number,
                a.amount_minor,
                a.rule,
            )
        if decision.credit_minor:
            await conn.execute(
                Q.add_credit_lot,
                mv.account,
                mv.bank_tx_id,
                decision.contract,
                mv.currency,
                decision.credit_minor,
            )
        balance = await conn.fetchval(Q.credit_balance, decision.contract)
        self._emit_matched(unit, mv, decision, balance)
        await self._record_outcomes(unit, decision.outcomes, mv.booked_on)

    def _emit_matched(
        self, unit: Unit, mv: domain.Movement, decision: domain.Matched, balance: int
    ) -> None:
        unit.emit(
            decision.contract,
            ev.PaymentMatched(
                contract=decision.contract,
                account=mv.account,
                bank_tx_id=mv.bank_tx_id,
                booked_on=mv.booked_on,
                amount_minor=mv.amount_minor,
                currency=mv.currency,
                allocations=[
                    ev.Allocation(
                        invoice_number=a.invoice.invoice_number,
                        ss=a.invoice.ss,
                        amount_minor=a.amount_minor,
                        rule=a.rule,
                    )
                    for a in decision.allocations
                ],
                credit_minor=decision.credit_minor,
                credit_balance_minor=balance,
                rule=decision.rule,
            ),
        )

    # --- a run's plain payments, set-based --------------------------------------------------

    async def _fetch_batch(self, unit: Unit, payments: Sequence[ev.PaymentReceived]) -> _Batch:
        """Fetch the facts of a stretch of plain payments."""
        facts = await unit.conn.fetchrow(
            Q.batch_facts,
            sorted({d.vs for d in payments if d.vs is not None}),
            sorted({d.ss for d in payments if d.ss is not None}),
            [d.account for d in payments],
            [d.bank_tx_id for d in payments],
            [d.currency for d in payments],
            [d.amount_minor for d in payments],
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
        return _Batch(
            contracts=contracts,
            invoices=invoices,
            settled=set(),
            by_ss=by_ss,
            by_contract=by_contract,
            known=set(facts["known"]),
            waiting=set(facts["waiting"]),
            balance=dict(facts["balances"]),
        )

    def _pair_in_batch(
        self,
        unit: Unit,
        event: CloudEvent,
        data: ev.PaymentReceived,
        mv: domain.Movement,
        b: _Batch,
    ) -> bool:
        """Pair a plain payment from the batch's facts, exactly as ``_credit`` would; False
        (with nothing changed) when this one needs the one-by-one path."""
        if (mv.account, mv.bank_tx_id) in b.known:
            return True  # the same bank movement again: already handled
        if (mv.account, mv.currency, mv.amount_minor) in b.waiting:
            return False
        assert mv.vs is not None
        by_vs = b.contracts.get(mv.vs)
        if by_vs is None:
            return False  # rules 2 and 3 need more facts than the batch fetched
        by_ss = None
        if mv.ss is not None and mv.ss in b.by_ss and b.by_ss[mv.ss] not in b.settled:
            by_ss = b.invoices[b.by_ss[mv.ss]]
        found = domain.identify(mv, domain.Lookup(by_vs, by_ss), self.phone_vs)
        if isinstance(found, domain.Unmatched):
            return False
        contract = found.contract.contract
        if contract not in b.contracts and contract not in b.by_contract:
            return False
        open_invoices = b.open_of(contract)
        decision = self._match(mv, found, open_invoices)
        if isinstance(decision, domain.Unmatched):
            return False
        if decision.credit_minor > 0 and isinstance(
            domain.within_credit_limit(decision, b.balance.get(decision.contract, 0)),
            domain.Unmatched,
        ):
            return False  # the one-by-one path queues it, saying why
        b.known.add((mv.account, mv.bank_tx_id))
        b.txs.append(_bank_tx(unit, event, data, "matched", decision.contract, None, decision.rule))
        for a in decision.allocations:
            b.allocations.append(
                (mv.account, mv.bank_tx_id, a.invoice.invoice_number, a.amount_minor, a.rule)
            )
        if decision.credit_minor:
            b.lots.append(
                (mv.account, mv.bank_tx_id, decision.contract, mv.currency, decision.credit_minor)
            )
        balance = b.balance.get(decision.contract, 0) + decision.credit_minor
        b.balance[decision.contract] = balance
        for o in decision.outcomes:
            number = o.invoice.invoice_number
            b.invoices[number] = dataclasses.replace(o.invoice, paid_minor=o.paid_minor)
            if o.settled:
                b.settled.add(number)
            b.paid[number] = (number, o.paid_minor, o.settled, o.forgiven_minor)
        self._emit_matched(unit, mv, decision, balance)
        self._emit_outcomes(unit, decision.outcomes, mv.booked_on)
        return True

    async def _finish_batch(self, unit: Unit, b: _Batch) -> None:
        """Write out what the batch's facts paired."""
        conn = unit.conn
        # one statement per table, one array a column (not a statement per row)
        if b.txs:
            await conn.execute(Q.insert_matched_txs, *columns(b.txs))
        if b.allocations:
            await conn.execute(Q.insert_allocations, *columns(b.allocations))
        if b.lots:  # rare (overpayments); a lot can take two amounts, so row by row
            await conn.executemany(Q.add_credit_lot, b.lots)
        if b.paid:
            await conn.execute(Q.update_invoices_paid, *columns(list(b.paid.values())))

    # --- reversals -------------------------------------------------------------------------

    async def _reverse(
        self, unit: Unit, original: domain.BookedCredit, debit_tx_id: str, booked_on: date
    ) -> None:
        """Take back everything ``original`` paid, directly and through its credit."""
        conn = unit.conn
        row = await conn.fetchrow(Q.get_bank_tx, original.account, original.bank_tx_id)
        contract = row["contract"] if row["status"] == "matched" else None
        await conn.execute(
            Q.mark_reversed, original.account, original.bank_tx_id, debit_tx_id, unit.now
        )
        await conn.execute(
            Q.mark_reversal, original.account, debit_tx_id, original.bank_tx_id, unit.now, contract
        )
        reopened: list[ev.Allocation] = []
        credit_removed = 0
        if contract is not None:
            allocs = await conn.fetch(Q.live_allocations_of, original.account, original.bank_tx_id)
            await conn.execute(Q.reverse_allocations, [a["id"] for a in allocs])
            per_invoice: dict[str, int] = defaultdict(int)
            for a in allocs:
                per_invoice[a["invoice_number"]] += a["amount_minor"]
            for number, amount in per_invoice.items():
                inv = _open_invoice(await conn.fetchrow(Q.get_invoice, number))
                outcome = domain.unapply(inv, amount, self.tolerance(inv.currency))
                await conn.execute(
                    Q.update_invoice_paid,
                    number,
                    outcome.paid_minor,
                    outcome.settled,
                    outcome.forgiven_minor,
                )
                reopened.append(
                    ev.Allocation(
                        invoice_number=number, ss=inv.ss, amount_minor=amount, rule="reversal"
                    )
                )
                if not outcome.settled:
                    unit.emit(
                        inv.contract,
                        ev.InvoiceReopened(
                            contract=inv.contract,
                            invoice_number=number,
                            ss=inv.ss,
                            amount_minor=inv.amount_minor,
                            paid_minor=outcome.paid_minor,
                            remaining_minor=outcome.remaining_minor,
                            currency=inv.currency,
                            reason=f"payment {original.bank_tx_id} reversed by {debit_tx_id}",
                        ),
                    )
            credit_removed = (
                await conn.fetchval(Q.drop_credit_lot, original.account, original.bank_tx_id) or 0
            )
        balance = await conn.fetchval(Q.credit_balance, contract) if contract else 0
        unit.emit(
            contract or original.vs or original.bank_tx_id,
            ev.PaymentReversed(
                contract=contract,
                account=original.account,
                bank_tx_id=original.bank_tx_id,
                reversal_bank_tx_id=debit_tx_id,
                booked_on=booked_on,
                amount_minor=original.amount_minor,
                currency=original.currency,
                reopened=reopened,
                credit_removed_minor=credit_removed,
                credit_balance_minor=balance,
            ),
        )

    # --- the operators' queue --------------------------------------------------------------

    async def assign(
        self,
        unit: Unit,
        account: str,
        bank_tx_id: str,
        contract: str,
        invoice_number: str | None,
        operator: str,
        note: str | None = None,
        remember_payer: bool = False,
    ) -> domain.Matched:
        """Pair an unmatched payment by hand: to a contract (its open invoices oldest first)
        or to one invoice first. Optionally confirm the payer's account for the contract."""
        conn = unit.conn
        row = await conn.fetchrow(Q.get_bank_tx, account, bank_tx_id)
        if row is None:
            raise Unknown(f"no bank movement {bank_tx_id} on account {account}")
        if row["status"] != "unmatched":
            raise AssignError(f"movement {bank_tx_id} is {row['status']}, not unmatched")
        if row["amount_minor"] <= 0:
            raise AssignError(f"movement {bank_tx_id} is a debit; only payments can be assigned")
        crow = await conn.fetchrow(Q.get_contract, contract)
        if crow is None:
            raise Unknown(f"no contract {contract}")
        if crow["currency"] != row["currency"]:
            raise AssignError(
                f"payment is in {row['currency']}, contract {contract} is billed in "
                f"{crow['currency']}"
            )
        first = None
        if invoice_number is not None:
            irow = await conn.fetchrow(Q.get_invoice, invoice_number)
            if irow is None or irow["contract"] != contract:
                raise Unknown(f"no invoice {invoice_number} of contract {contract}")
            first = _open_invoice(irow)
        if remember_payer and not row["counterparty_account"]:
            raise AssignError("the statement gives no payer account to remember")
        mv = domain.Movement(
            account,
            bank_tx_id,
            row["booked_on"],
            row["amount_minor"],
            row["currency"],
            row["vs"],
            row["ss"],
            row["counterparty_account"],
            row["message"],
        )
        open_invoices = [_open_invoice(r) for r in await conn.fetch(Q.open_invoices, contract)]
        decision = domain.match(
            mv,
            domain.ContractInfo(contract, crow["currency"]),
            open_invoices,
            first if first and first.open_minor > 0 else None,
            self.tolerance(mv.currency),
            how="manual",
        )
        assert isinstance(decision, domain.Matched)  # contract and currency checked above
        if decision.credit_minor > 0:
            balance = await conn.fetchval(Q.credit_balance, contract)
            capped = domain.within_credit_limit(decision, balance)
            if isinstance(capped, domain.Unmatched):
                raise AssignError(capped.reason)
        await conn.execute(Q.mark_assigned, account, bank_tx_id, contract, operator, note, unit.now)
        if remember_payer:
            await conn.execute(
                Q.confirm_payer, row["counterparty_account"], contract, operator, unit.now, note
            )
        await self._apply(unit, mv, decision)
        return decision

    # --- outcomes --------------------------------------------------------------------------

    async def _record_outcomes(
        self, unit: Unit, outcomes: list[domain.InvoiceOutcome], on: date
    ) -> None:
        for o in outcomes:
            inv = o.invoice
            await unit.conn.execute(
                Q.update_invoice_paid, inv.invoice_number, o.paid_minor, o.settled, o.forgiven_minor
            )
        self._emit_outcomes(unit, outcomes, on)

    def _emit_outcomes(self, unit: Unit, outcomes: list[domain.InvoiceOutcome], on: date) -> None:
        for o in outcomes:
            inv = o.invoice
            if o.settled:
                unit.emit(
                    inv.contract,
                    ev.InvoiceSettled(
                        contract=inv.contract,
                        invoice_number=inv.invoice_number,
                        ss=inv.ss,
                        amount_minor=inv.amount_minor,
                        paid_minor=o.paid_minor,
                        currency=inv.currency,
                        settled_on=on,
                        within_tolerance_minor=o.forgiven_minor,
                    ),
                )
            else:
                unit.emit(
                    inv.contract,
                    ev.InvoicePartiallyPaid(
                        contract=inv.contract,
                        invoice_number=inv.invoice_number,
                        ss=inv.ss,
                        amount_minor=inv.amount_minor,
                        paid_minor=o.paid_minor,
                        remaining_minor=o.remaining_minor,
                        currency=inv.currency,
                    ),
                )
