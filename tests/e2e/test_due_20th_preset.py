"""The second preset on the shared test clock with the whole system running: invoices due
on the 20th, e-mail and SMS the day after, restriction on the first of the next month,
full speed again on payment; a reversed payment brings the restriction back."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import pytest

from services.devstack.demo import START, Scenario
from services.devstack.stack import Stack
from services.runtime import db
from services.runtime.clock import set_clock

pytestmark = pytest.mark.e2e

CONTRACT = {
    "contract": "2001", "customer_name": "Dana Rýchla", "language": "sk", "country": "SK",
    "currency": "EUR", "monthly_fee_minor": 1990, "due": {"day_of_month": 20},
    "policy": "due-20th-restrict",
    "contacts": [{"name": "Dana Rýchla", "email": "dana@example.sk", "phone": "+421905000001",
                  "language": "sk", "owner": True}],
    "subscribers": {"ipv4": ["127.0.100.21"]},
}  # fmt: skip


def test_due_20th_restrict_on_the_test_clock(stack: Stack, tmp_path: Path) -> None:
    asyncio.run(_story(stack, tmp_path))


async def _story(stack: Stack, tmp: Path) -> None:
    s = Scenario(stack, out=lambda _line: None)
    conn = await db.connect(s.settings.database_url)
    try:
        await set_clock(conn, START)
    finally:
        await conn.close()
    await s.watcher.start()
    try:
        contracts = tmp / "contracts.json"
        contracts.write_text(json.dumps({"contracts": [CONTRACT]}), encoding="utf-8")
        await s.cli("contracts", "load", str(contracts))
        await s.cli("invoicing", "run", "--period", "2026-12")
        await s.quiet()
        [issued] = [e.event["data"] for e in s.watcher.of("invoice.issued.v1", "2001")]
        assert issued["due_on"] == "2026-12-20"

        await s.advance_to(date(2026, 12, 20))
        assert s.watcher.of("reminder.requested.v1", "2001") == []
        await s.advance_to(date(2026, 12, 21))
        [reminder] = [e.event["data"] for e in s.watcher.of("reminder.requested.v1", "2001")]
        assert reminder["channels"] == ["email", "sms"] and reminder["currency"] == "EUR"
        assert [m.subject for m in stack.mail.to("dana@example.sk")] == [  # type: ignore[attr-defined]
            "Pripomienka neuhradenej faktúry (2001)"
        ]

        await s.advance_to(date(2026, 12, 31))
        assert s.access("2001")[-1:] != ["restricted"]
        await s.advance_to(date(2027, 1, 1))
        assert s.access("2001")[-1:] == ["restricted"]
        assert len(s.watcher.of("restrict.requested.v1", "2001")) == 1

        await s.cli(
            "payment", "publish", "--vs", "2001", "--ss", issued["ss"], "--amount", "19.90",
            "--currency", "EUR", "--bank-tx-id", "pay-2001",
        )  # fmt: skip
        await s.quiet()
        assert s.access("2001")[-1:] == ["active"]

        # The bank reverses the payment: restricted again, under a new request id.
        await s.cli(
            "payment", "publish", "--vs", "2001", "--amount", "-19.90", "--currency", "EUR",
            "--bank-tx-id", "rev-2001",
        )  # fmt: skip
        await s.quiet()
        assert s.access("2001")[-1:] == ["restricted"]
        ids = [e.event["data"]["request_id"] for e in s.watcher.of("restrict.requested.v1")]
        assert ids == ["restrict@2026000001", "restrict@2026000001#2"]
    finally:
        await s.watcher.stop()
