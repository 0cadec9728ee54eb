"""What the zone keeps of VoIP top-ups and usage (docs/zone.md#top-up, #traffic, #calls):
invoicing's answers to top-up requests, prepaid balances, closed traffic hours per
address and rated calls. Each handler is idempotent: an event delivered twice leaves the
same rows (answers are written again whole, a traffic hour only by a higher revision, a
call id once per contract, a balance only by a newer one)."""

from __future__ import annotations

import json

from schemas import events as ev
from services.runtime import sql
from services.runtime.db import Jsonb
from services.runtime.runs import Run
from services.runtime.unit import Unit

Q = sql.load(__file__, "usage.sql")

TopupAnswer = ev.TopupInvoiced | ev.TopupRefused


class UsageHandlers:
    async def on_topup_answer(self, unit: Unit, run: Run[TopupAnswer]) -> None:
        for d in run:
            outcome = "invoiced" if isinstance(d, ev.TopupInvoiced) else "refused"
            unit.stage(
                Q.put_topup_answer,
                d.contract,
                d.request_id,
                d.coupon,
                outcome,
                d.model_dump(mode="json"),
                d.month,
                unit.now,
            )

    async def on_credit_balance(self, unit: Unit, run: Run[ev.VoipCreditBalance]) -> None:
        for d in run:
            unit.stage(Q.put_balance, d.contract, d.balance_minor, d.currency, d.at)

    async def on_traffic_hour(self, unit: Unit, run: Run[ev.TrafficHour]) -> None:
        newest: dict[tuple[str, object], ev.TrafficHour] = {}
        for d in run:  # one statement: a run's repeats of an hour reduced to the highest
            key = (d.contract, d.hour)
            if key not in newest or newest[key].revision < d.revision:
                newest[key] = d
        items = list(newest.values())
        await unit.conn.execute(
            Q.put_traffic_hours,
            [d.contract for d in items],
            [d.hour for d in items],
            [d.revision for d in items],
            [Jsonb(json.dumps([a.model_dump() for a in d.addresses])) for d in items],
        )

    async def on_calls_rated(self, unit: Unit, run: Run[ev.CallsRated]) -> None:
        calls = {(d.contract, c.call_id): c for d in run for c in d.calls}
        await unit.conn.execute(
            Q.add_calls,
            [k[0] for k in calls],
            [k[1] for k in calls],
            [c.started_at for c in calls.values()],
            [c.seconds for c in calls.values()],
            [c.number for c in calls.values()],
            [c.destination for c in calls.values()],
            [c.price_minor for c in calls.values()],
            [c.currency for c in calls.values()],
            [c.prepaid for c in calls.values()],
        )
