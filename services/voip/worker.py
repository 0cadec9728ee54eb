"""VoIP worker: keeps each contract's currency and prepaid flag (``contract.upserted``),
turns paid top-ups (``voip_credit.purchased``) into prepaid credit once each, and
publishes what CDR imports (``billing voip import``) leave in its outbox."""

from __future__ import annotations

import asyncpg
from prometheus_client import Gauge
from pydantic import BaseModel

from schemas import events as ev
from services.runtime.runs import Handler
from services.runtime.worker import Runtime, ServiceSpec, run
from services.voip.service import Q, Voip
from services.voip.settings import VoipSettings

CREDIT_EXHAUSTED = Gauge(
    "billing_voip_credit_exhausted_contracts",
    "Prepaid VoIP balances at zero or less (the PBX blocks their paid calls)",
)


def subscriptions(rt: Runtime[VoipSettings]) -> dict[type[BaseModel], Handler]:
    v = Voip(rt.settings)
    return {ev.ContractUpserted: v.on_contract, ev.VoipCreditPurchased: v.on_purchase}


async def gauges(rt: Runtime[VoipSettings], conn: asyncpg.Connection) -> None:
    CREDIT_EXHAUSTED.set(await conn.fetchval(Q.exhausted_balances))


SPEC = ServiceSpec(
    name="voip",
    metrics_port=9108,
    settings=VoipSettings,
    subscriptions=subscriptions,
    gauges=gauges,
)

if __name__ == "__main__":
    run(SPEC)
