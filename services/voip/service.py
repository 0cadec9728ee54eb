"""VoIP's effects in PostgreSQL: contracts from ``contract.upserted``, prepaid credit from
paid top-ups (the worker) and from rated prepaid calls (the import, ``importer.py``).

A change of credit, in the caller's transaction:
1. record its ledger entries (``invoice:<number>``, ``call:<id>``: primary key), keeping
   only the new ones: an event delivered twice or a file imported again adds nothing;
2. lock the balance row (the import and the worker may change one balance at once);
3. ask the domain what the new balance announces, store it with what was announced, and
   emit the balance (and low / exhausted) events to the outbox in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas import events as ev
from services.runtime import sql
from services.runtime.runs import Run
from services.runtime.unit import Unit
from services.voip import domain
from services.voip.settings import VoipSettings

Q = sql.load(__file__)
SOURCE = "/services/voip"


def prepaid_of(data: ev.ContractUpserted) -> bool | None:
    """Whether the contract's calls are prepaid: None when the producer did not list its
    services (the flag stays as it was)."""
    if data.services is None:
        return None
    return any(s.kind == "voip" and s.prepaid for s in data.services)


async def change_credit(
    unit: Unit,
    settings: VoipSettings,
    contract: str,
    currency: str,
    entries: Sequence[tuple[str, int]],
    reason: str,
) -> int | None:
    """Apply ledger ``entries`` (key, change) to a balance (see the module's steps); the
    new balance, or None when every entry was applied before."""
    await unit.drain()
    new = await unit.conn.fetch(
        Q.ledger_insert_new,
        [e for e, _ in entries],
        contract,
        currency,
        [m for _, m in entries],
        unit.now,
    )
    if not new:
        return None
    change = sum(r["change_minor"] for r in new)
    await unit.conn.execute(Q.ensure_balance, contract, currency)
    row = await unit.conn.fetchrow(Q.balance_for_update, contract, currency)
    threshold = settings.voip_credit_low_minor.get(currency, 0)
    before = domain.Credit(row["balance_minor"], row["low_sent"], row["exhausted_sent"])
    after = domain.change_credit(before, change, threshold)
    credit = after.credit
    await unit.conn.execute(
        Q.set_balance, contract, currency, credit.balance_minor, credit.low_sent,
        credit.exhausted_sent, unit.now,
    )  # fmt: skip
    balance = credit.balance_minor
    unit.emit(
        contract,
        ev.VoipCreditBalance(
            contract=contract,
            balance_minor=balance,
            currency=currency,
            change_minor=change,
            reason=reason,
            at=unit.now,
        ),
    )
    announced: list[ev.VoipCreditLow | ev.VoipCreditExhausted] = []
    if after.low:
        announced.append(
            ev.VoipCreditLow(
                contract=contract,
                balance_minor=balance,
                threshold_minor=threshold,
                currency=currency,
                at=unit.now,
            )
        )
    if after.exhausted:
        announced.append(
            ev.VoipCreditExhausted(
                contract=contract, balance_minor=balance, currency=currency, at=unit.now
            )
        )
    for event in announced:
        unit.emit(contract, event)
    return balance


class Voip:
    def __init__(self, settings: VoipSettings) -> None:
        self.settings = settings

    async def on_contract(self, unit: Unit, run: Run[ev.ContractUpserted]) -> None:
        for d in run:
            unit.stage_row(Q.upsert_contracts, d.contract, d.contract, d.currency, prepaid_of(d))

    async def on_purchase(self, unit: Unit, run: Run[ev.VoipCreditPurchased]) -> None:
        """A paid top-up invoice becomes credit once: its ledger entry is the invoice."""
        for d in run:
            entry = (f"invoice:{d.invoice_number}", d.amount_minor)
            await change_credit(unit, self.settings, d.contract, d.currency, [entry], "topup")
