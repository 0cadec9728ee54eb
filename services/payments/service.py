"""Payments handlers: keep the invoice read model, pair movements, and the operators'
manual assignment. Each reads forward through the same three files: ``facts`` loads what
the decision needs, ``domain`` decides (every pairing rule is there), ``ledger`` writes
the decision and emits its events, in the caller's transaction."""

from __future__ import annotations

import re

from schemas import events as ev
from services.payments import domain, facts, ledger
from services.payments.settings import PaymentsSettings
from services.runtime import logs, sql
from services.runtime.errors import EX_NOINPUT, BadInput, NotFound
from services.runtime.runs import Run
from services.runtime.unit import Unit

Q = sql.load(__file__)
log = logs.get(__name__)


class AssignError(BadInput):
    """An operator's assignment that cannot be done, and why (exit 65)."""


class Unknown(AssignError, NotFound):
    """The movement, contract or invoice named is not one payments knows (exit 66)."""

    exit_code = EX_NOINPUT


class Payments:
    def __init__(self, settings: PaymentsSettings) -> None:
        self.settings = settings
        re.compile(settings.phone_vs_pattern)  # fail at start, not on the first payment
        self.rules = domain.Rules(settings.phone_vs_pattern, settings.rounding_tolerance)

    # --- read model ------------------------------------------------------------------------

    # A run of contract or invoice events (a contracts load, a billing run) is applied at
    # once, set-based.

    async def on_contract(self, unit: Unit, run: Run[ev.ContractUpserted]) -> None:
        last = {d.contract: d.currency for d in run}  # a repeat in the run: the last wins
        await unit.conn.execute(Q.upsert_contracts, list(last), list(last.values()))

    async def on_invoice_issued(self, unit: Unit, run: Run[ev.InvoiceIssued]) -> None:
        """New invoices into the read model; one of a contract with credit is paid from it
        at once."""
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
                lots, invoice = await facts.credit_for(conn, d)
                if invoice is None:
                    continue
                tolerance = self.rules.tolerance_of(d.currency)
                used, outcome = domain.apply_credit_lots(lots, invoice, tolerance)
                if outcome is not None:
                    await ledger.spend_credit(unit, used, outcome)

    async def on_credit_note(self, unit: Unit, run: Run[ev.CreditNoteIssued]) -> None:
        """Credit notes lower what their invoices ask (``domain.apply_credit_note``)."""
        for d in run:
            found = await facts.credit_note(unit.conn, d)
            if found is None:
                log.warning(
                    "credit_note.unknown_invoice",
                    credit_note=d.credit_note_number,
                    invoice=d.invoice_number,
                    contract=d.contract,
                )
                continue
            credited = domain.apply_credit_note(
                found.invoice,
                found.settled,
                found.credited_minor,
                d.credited_minor,
                found.paid_by,
                self.rules.tolerance_of(d.currency),
            )
            if credited is not None:
                await ledger.credit_note(unit, credited, d.issued_on)

    # --- incoming movements ----------------------------------------------------------------

    async def on_payment_received(self, unit: Unit, run: Run[ev.PaymentReceived]) -> None:
        """Pair a run of movements in order, a single one as a run of one. The run's facts
        are loaded at once; ``domain`` decides from them as far as it can, keeping them
        current, and says what the next movement needs beyond them; what is decided is
        written, that is loaded, and the run goes on from there."""
        received = list(run.pairs())
        movements = [facts.movement(data) for data in run.data]
        known = await facts.run(unit.conn, movements)
        done = 0
        while done < len(movements):
            step = domain.decide_run(movements[done:], known, self.rules)
            end = done + len(step.decisions)
            await ledger.write(unit, received[done:end], step.decisions)
            done = end
            if step.need is not None:  # after the writes, so it reads what they wrote
                known = await facts.more(unit.conn, known, step.need, movements[done:])

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
        request = domain.Assignment(account, bank_tx_id, contract, invoice_number, remember_payer)
        decided = domain.assign(request, await facts.assignment(unit.conn, request), self.rules)
        if isinstance(decided, domain.Refused):
            raise (Unknown if decided.unknown else AssignError)(decided.reason)
        await ledger.assign(unit, decided, operator, note, remember_payer)
        return decided.matched

    # --- statements imported ----------------------------------------------------------------

    async def on_statement_imported(self, unit: Unit, run: Run[ev.StatementImported]) -> None:
        """An importer imported a statement of one of our accounts, movements or none: the
        latest per account, for billing_bank_statement_last_import_timestamp_seconds."""
        await unit.conn.execute(
            Q.record_statement_imports,
            [d.account for d in run],
            [d.imported_at for d in run],
            [d.file for d in run],
            [d.movements for d in run],
        )
