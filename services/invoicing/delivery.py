"""Delivery of invoices and credit notes (issue 29 item 5): invoicing makes each document's
PDF and ISDOC once, archives them with their SHA-256 (``document_archive``, append-only)
and hands them to notify in ``document.ready``; notify e-mails them to the contract's
billing contacts, once per recipient, with its retries and failure log, and its
``notification.sent`` marks the document delivered here.

Why invoicing renders and the event carries the bytes: invoicing owns the documents and
their renderers, and no service reads another's tables or imports its code (DESIGN
section 2), so notify cannot make or fetch them itself. The bytes notify attaches are the
very bytes archived (the event and the archive row are written in one transaction), so
what was sent is what the archive holds. A PDF and its ISDOC are tens of kilobytes, far
under a Kafka record's megabyte, and one document is one record (never packed).

Order in ``archive_one``, and why it is safe: the document is read and rendered outside any
transaction (it is immutable once issued; rendering takes a fraction of a second of CPU and
runs in a thread, so the worker's consumers keep going); then one transaction inserts the
archive row and the event into the outbox. Two workers that render the same document at
once both try the insert; the primary key lets one win, and only the winner emits, so
notify hears of each document once. A crash before the commit leaves nothing behind and
the next round makes it again, byte for byte the same.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Any

import asyncpg

from schemas import events as ev
from services.invoicing import issued
from services.runtime import logs, metrics, sql
from services.runtime.clock import Clock
from services.runtime.errors import BadInput
from services.runtime.runs import Run
from services.runtime.unit import Unit

if TYPE_CHECKING:
    from services.runtime.worker import Runtime

Q = sql.load(__file__)
SOURCE = "/services/invoicing"
DOCUMENT_KINDS = ("invoice", "credit_note")
STAGES = ("to_make", "to_deliver")
log = logs.get(__name__)


def attachment(filename: str, media_type: Any, content: bytes) -> ev.Attachment:
    return ev.Attachment(
        filename=filename,
        media_type=media_type,
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
    )


def _render_both(doc: Any) -> tuple[bytes, bytes]:
    return issued.render(doc, "pdf"), issued.render(doc, "isdoc")


class Archiver:
    """Makes undelivered documents into their PDF and ISDOC, archives them and announces
    them to notify. Documents that cannot be made (a customer without an address) are
    logged once and skipped until the worker restarts; ``billing documents undelivered``
    shows them as not made yet."""

    def __init__(self, pool: Any, clock: Clock) -> None:
        self.pool = pool
        self.clock = clock
        self.refused: set[str] = set()

    async def archive_due(self, batch: int = 20) -> int:
        """Archive and announce up to ``batch`` documents; how many were archived here."""
        async with self.pool.acquire() as conn:
            await self.clock.refresh(conn)
            rows = await conn.fetch(Q.to_archive, batch, sorted(self.refused))
            done = 0
            for row in rows:
                done += await self.archive_one(conn, row)
        return done

    async def archive_one(self, conn: asyncpg.Connection, row: Any) -> bool:
        number = row["number"]
        try:
            doc = await issued.document(conn, number)
            pdf, isdoc = await asyncio.to_thread(_render_both, doc)
        except BadInput as exc:
            self.refused.add(number)
            metrics.DOCUMENTS_FAILED.set(len(self.refused))
            log.warning("document not delivered: cannot be made", number=number, error=str(exc))
            return False
        event = ev.DocumentReady(
            contract=row["contract"],
            kind=row["kind"],
            number=number,
            issued_on=row["issued_on"],
            amount_minor=row["amount_minor"],
            currency=row["currency"],
            due_on=None if doc.kind == "credit_note" else doc.due_on,
            attachments=[
                attachment(f"{number}.pdf", "application/pdf", pdf),
                attachment(f"{number}.isdoc", "application/xml", isdoc),
            ],
        )
        a, b = event.attachments
        async with conn.transaction():
            unit = Unit(conn, self.clock.now(), SOURCE)
            won = await conn.fetchval(
                Q.archive_document, number, row["kind"], row["contract"],
                a.content, a.sha256, b.content, b.sha256, unit.now,
            )  # fmt: skip
            if won is None:
                return False  # another worker archived and announced it
            unit.emit(row["contract"], event)
            await unit.flush()
        return True

    async def run(self, poll_interval: float) -> None:
        while True:
            try:
                while await self.archive_due() > 0:
                    pass
            except Exception as exc:  # the database: the next round tries again
                log.error("document archive round failed", error=repr(exc))
            await asyncio.sleep(poll_interval)


async def gauges(rt: Runtime, conn: asyncpg.Connection) -> None:
    """Undelivered documents per stage and the oldest's age, every stage a series (0 when
    none waits there), for the worker's gauge timer."""
    rows = {r["label"]: r for r in await conn.fetch(Q.document_gauges, rt.clock.now())}
    for stage in STAGES:
        row = rows.get(stage)
        metrics.DOCUMENTS_PENDING.labels(stage).set(row["n"] if row else 0)
        metrics.DOCUMENTS_PENDING_OLDEST.labels(stage).set(row["oldest"] if row else 0)


async def on_notification_sent(unit: Unit, run: Run[ev.NotificationSent]) -> None:
    """A document's e-mail reached a contact: the document is delivered (the first counts)."""
    for data in run:
        if data.kind == "invoice":
            unit.stage(Q.mark_invoice_delivered, data.request_id, unit.now)
        elif data.kind == "credit_note":
            unit.stage(Q.mark_credit_note_delivered, data.request_id, unit.now)
