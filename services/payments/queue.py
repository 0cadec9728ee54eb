"""The operators' queue of unmatched payments: list, explain, assign.

Shared by ``billing payments ...`` and the payments worker's HTTP endpoints. Reads and
writes only the payments schema; an assignment runs in one transaction with its events
(outbox), like everything the worker does."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.payments.service import AssignError, Payments, Q, Unknown
from services.runtime import audit
from services.runtime.unit import Unit

__all__ = ["AssignError", "Unknown", "assign", "explain", "unmatched"]


def _row(r: Any) -> dict[str, Any]:
    out = dict(r)
    for k, v in out.items():
        if hasattr(v, "isoformat"):
            out[k] = v.isoformat()
    return out


async def unmatched(conn: asyncpg.Connection, limit: int = 500) -> list[dict[str, Any]]:
    return [_row(r) for r in await conn.fetch(Q.list_unmatched, limit)]


async def explain(conn: asyncpg.Connection, account: str, bank_tx_id: str) -> dict[str, Any]:
    """One movement, what was decided about it and by which rule."""
    async with conn.transaction():
        row = await conn.fetchrow(Q.get_bank_tx, account, bank_tx_id)
        if row is None:
            raise Unknown(f"no bank movement {bank_tx_id} on account {account}")
        out = _row(row)
        out["allocations"] = [
            _row(a) for a in await conn.fetch(Q.allocations_of, account, bank_tx_id)
        ]
    return out


async def assign(
    payments: Payments,
    unit: Unit,
    account: str,
    bank_tx_id: str,
    contract: str,
    invoice_number: str | None,
    operator: str,
    note: str | None,
    remember_payer: bool,
) -> dict[str, Any]:
    """Pair one unmatched payment by hand, and record it in the audit trail in the same
    transaction (the CLI's and the HTTP endpoint's alike)."""
    decision = await payments.assign(
        unit, account, bank_tx_id, contract, invoice_number, operator, note, remember_payer
    )
    result = {
        "contract": decision.contract,
        "allocations": [
            {
                "invoice_number": a.invoice.invoice_number,
                "amount_minor": a.amount_minor,
                "settled": o.settled,
            }
            for a, o in zip(decision.allocations, decision.outcomes, strict=True)
        ],
        "credit_minor": decision.credit_minor,
    }
    details = {"account": account, "bank_tx_id": bank_tx_id, "invoice_number": invoice_number,
               "remember_payer": remember_payer, **result}  # fmt: skip
    await audit.record(
        unit.conn, unit.now, operator, "assign-payment", decision.contract, details, note
    )
    return result
