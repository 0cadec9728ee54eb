"""Invoices and credit notes delivered once (issue 29 item 5), against the real PostgreSQL
and an aiosmtpd SMTP server: invoicing archives each document's PDF and ISDOC with their
hashes and announces them; notify e-mails both attachments to the billing contacts once,
under redelivery, retrying a failure it shows; its notification.sent marks them delivered."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from schemas import events as ev
from schemas.envelope import CloudEvent, envelope
from services.invoicing import delivery, issued
from services.invoicing.settings import InvoicingSettings
from services.runtime import db
from services.runtime.runs import Run
from services.runtime.unit import Unit
from tests.integration.test_invoice_documents import NOW, _issue, _render
from tests.integration.test_notify_delivery import (
    FixedClock,
    Harness,
    SmtpSink,
    settings_for,
    smtp_server,
)

LATER = datetime(2027, 3, 1, 9, tzinfo=UTC)


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def _outbox(conn: asyncpg.Connection, kind: str) -> list[Any]:
    rows = await conn.fetch("SELECT value FROM outbox WHERE event_type = $1 ORDER BY id", kind)
    return [CloudEvent.model_validate(json.loads(bytes(r["value"]))) for r in rows]


def test_documents_are_archived_and_mailed_once_with_pdf_and_isdoc(
    database_url: str, tmp_path: Path
) -> None:
    sink = SmtpSink(fail_first=1)
    controller, port = smtp_server(sink)
    try:
        asyncio.run(_deliver(database_url, tmp_path, sink, port))
    finally:
        controller.stop()


async def _deliver(url: str, tmp: Path, sink: SmtpSink, port: int) -> None:
    await _issue(url, tmp)  # the February invoices of 7001, 7002 (no address), 7003
    inv = await db.connect(url, "invoicing")
    inv_pool = await db.create_pool(url, "invoicing", max_size=2)
    await db.migrate(url, "notify")
    h = Harness(
        await db.connect(url, "notify"),
        await db.create_pool(url, "notify", max_size=2),
        settings_for(url, port, "http://127.0.0.1:9/sms"),
    )
    try:
        first = await inv.fetchval("SELECT invoice_number FROM invoices WHERE contract = '7001'")
        async with inv.transaction():
            unit = Unit(inv, NOW, "/test")
            note = await issued.issue_credit_note(
                unit, InvoicingSettings(database_url=url), first, date(2027, 3, 1),
                "Výpadek služby", [(1, 10000)], "test",
            )  # fmt: skip
            await unit.flush()
        for contract in ("7001", "7003"):
            data = ev.ContractUpserted(
                contract=contract, customer_name="Jana Nováková", currency="CZK",
                monthly_fee_minor=49900,
                contacts=[
                    ev.Contact(name="Owner", email=f"owner{contract}@example.cz",
                               categories=["dunning"], owner=True),
                    ev.Contact(name="Účetní", email=f"ucto{contract}@example.cz",
                               categories=["billing"]),
                ],
            )  # fmt: skip
            event = envelope("contract.upserted.v1", "/test", contract, data, NOW)
            await h.unit(lambda u, e=event, d=data: h.notify.on_contract(u, Run.of(e, d)), NOW)

        # invoicing: both invoices with a document and the credit note, archived once;
        # 7002's (no address) refused and left undelivered
        archiver = delivery.Archiver(inv_pool, FixedClock(NOW))
        assert await archiver.archive_due() == 3
        assert await archiver.archive_due() == 0
        archive = await inv.fetch("SELECT * FROM document_archive ORDER BY number")
        assert sorted(r["number"] for r in archive) == sorted(
            [
                first,
                note.note.number,
                await inv.fetchval("SELECT invoice_number FROM invoices WHERE contract = '7003'"),
            ]
        )
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await inv.execute("UPDATE document_archive SET contract = '1'")
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await inv.execute("DELETE FROM document_archive")
        ready = await _outbox(inv, "document.ready.v1")
        assert len(ready) == 3
        # the gauges (issue 32): three handed to notify, 7002's not made and failed here
        await delivery.gauges(SimpleNamespace(clock=FixedClock(LATER)), inv)  # type: ignore[arg-type]
        assert gauge("billing_documents_pending", stage="to_deliver") == 3
        assert gauge("billing_documents_pending", stage="to_make") == 1
        assert (
            gauge("billing_documents_pending_oldest_seconds", stage="to_deliver")
            == (LATER - NOW).total_seconds()
        )
        made = gauge("billing_documents_pending_oldest_seconds", stage="to_make")
        assert made is not None and made >= (LATER - NOW).total_seconds()
        assert gauge("billing_documents_failed") == 1

        # notify, each event twice (redelivery): one e-mail per document and billing contact
        for event in [*ready, *ready]:
            data = ev.DocumentReady.model_validate(event.data)
            await h.unit(lambda u, e=event, d=data: h.notify.on_document(u, Run.of(e, d)), NOW)
        rows = await h.conn.fetch("SELECT recipient, request_id FROM deliveries ORDER BY id")
        assert sorted(r["recipient"] for r in rows) == [
            "ucto7001@example.cz",
            "ucto7001@example.cz",
            "ucto7003@example.cz",
        ]
        # the first attempt fails (451): retried, and the operator sees why
        assert await h.send(NOW) == 3
        failed = await h.conn.fetch("SELECT * FROM deliveries WHERE last_error IS NOT NULL")
        assert len(failed) == 1 and "451" in failed[0]["last_error"]
        assert failed[0]["status"] == "pending" and failed[0]["attempts"] == 1
        assert await h.send(LATER) == 1
        assert await h.send(LATER) == 0
        assert len(sink.messages) == 3  # exactly once each

        # both attachments, identical to a fresh render from the stored document and to
        # the archived bytes with their hashes
        by_number = {r["number"]: r for r in archive}
        for msg in sink.messages:
            files = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
            number = next(n for n in by_number if f"{n}.pdf" in files)
            pdf, xml = await _render(url, number)
            assert files == {f"{number}.pdf": pdf, f"{number}.isdoc": xml}
            assert by_number[number]["pdf_sha256"] == hashlib.sha256(pdf).hexdigest()
            assert bytes(by_number[number]["isdoc"]) == xml

        # notify's notification.sent marks the documents delivered; 7002's stays listed
        sent = [
            (e, ev.NotificationSent.model_validate(e.data))
            for e in await _outbox(h.conn, "notification.sent.v1")
        ]
        async with inv.transaction():
            unit = Unit(inv, LATER, "/test")
            for e, d in sent:
                await delivery.on_notification_sent(unit, Run.of(e, d))
            await unit.flush()
        left = await issued.undelivered(inv)
        assert [r["contract"] for r in left] == ["7002"] and left[0]["archived_at"] is None
        await delivery.gauges(SimpleNamespace(clock=FixedClock(LATER)), inv)  # type: ignore[arg-type]
        assert gauge("billing_documents_pending", stage="to_deliver") == 0
        assert gauge("billing_documents_pending_oldest_seconds", stage="to_deliver") == 0
        assert gauge("billing_documents_pending", stage="to_make") == 1
    finally:
        await inv_pool.close()
        await inv.close()
        await h.conn.close()
