"""``billing_reconnect_seconds``: from a payment's arrival (the payments.received event's
time, carried by invoice.settled and restore.requested as ``paid_at``) to the first gear
reporting the restore applied (issue 32 item 1). Against PostgreSQL, provisioning's
handlers as the worker runs them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from schemas import events as ev
from schemas.envelope import envelope
from services.provisioning import drift
from services.provisioning.service import Provisioning
from services.runtime import db
from services.runtime.runs import Run
from tests.integration.test_provisioning_drift import add_contracts, in_unit

NOW = datetime(2026, 12, 20, 10, tzinfo=UTC)
NAME = "billing_reconnect_seconds"


def sample(suffix: str, le: str | None = None) -> float:
    labels = {"le": le} if le is not None else {}
    return REGISTRY.get_sample_value(NAME + suffix, labels) or 0.0


def test_a_paid_restore_is_timed_from_payment_to_the_first_gear(database_url: str) -> None:
    asyncio.run(_reconnect(database_url))


async def _reconnect(url: str) -> None:
    await db.migrate(url, "provisioning")
    conn = await db.connect(url, "provisioning")
    p = Provisioning()

    async def unit(fn, at: datetime = NOW) -> None:  # type: ignore[no-untyped-def]
        await in_unit(conn, fn, at)

    async def restore(contract: str, paid_at: datetime | None) -> None:
        data = ev.RestoreRequested(
            contract=contract, request_id=f"r-{contract}", reason="paid", decided_at=NOW,
            paid_at=paid_at,
        )  # fmt: skip
        event = envelope("restore.requested.v1", "/services/dunning", contract, data, NOW)
        await unit(lambda u: p.on_request(u, Run.of(event, data)))

    async def applied(gear: str, contract: str, version: int, at: datetime) -> None:
        data = ev.GearApplied(
            gear=gear, contract=contract, version=version, state="active", applied_at=at
        )
        event = envelope("gear.applied.v1", f"/gear/{gear}", contract, data, at)
        await unit(lambda u: drift.on_gear_applied(u, Run.of(event, data)))

    try:
        await add_contracts(
            conn, p, {"2001": "100.64.1.1", "2002": "100.64.1.2", "2003": "100.64.1.3"}
        )
        for c in ("2001", "2002"):
            await unit(lambda u, c=c: p.change(u, c, "suspend"), NOW - timedelta(days=3))  # v2
        count, total = sample("_count"), sample("_sum")
        below, above = sample("_bucket", "2.5"), sample("_bucket", "5.0")

        await restore("2001", NOW - timedelta(seconds=2))  # paid 2 s before the restore: v3
        await restore("2002", None)  # restored without a payment (an operator): not timed
        await restore("2003", NOW - timedelta(seconds=2))  # never cut off: nothing to apply
        await applied("gw-a", "2001", 2, NOW)  # an older version: not the restore yet
        assert sample("_count") == count
        await applied("gw-a", "2001", 3, NOW + timedelta(seconds=1.5))
        for c in ("2002", "2003"):
            await applied("gw-a", c, 3 if c == "2002" else 1, NOW + timedelta(seconds=1))
        await applied("gw-b", "2001", 3, NOW + timedelta(seconds=9))  # a second gear

        assert sample("_count") == count + 1  # one restore, timed once
        assert sample("_sum") - total == 3.5
        assert sample("_bucket", "2.5") == below and sample("_bucket", "5.0") == above + 1
    finally:
        await conn.close()
