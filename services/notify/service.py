"""Notify: turn dunning requests into deliveries (one per recipient, exactly once), and send
them with retries.

A request becomes ``deliveries`` rows in the consumer's transaction; the sender claims due
rows with ``FOR UPDATE SKIP LOCKED``, sends, and records the outcome with the
notification event in one transaction. A crash between the SMTP "250 OK" and that commit
sends the message again; the Message-ID is derived from the delivery key so mail systems
can recognise the repeat.
"""

from __future__ import annotations

import asyncio
import hashlib
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from pydantic import BaseModel

from schemas import events as ev
from schemas.envelope import CloudEvent
from services.notify import domain, templates
from services.runtime import logs, sql
from services.runtime.clock import Clock
from services.runtime.settings import Settings, Topics
from services.runtime.unit import Unit

Q = sql.load(__file__)
log = logs.get(__name__)

KINDS = {
    "reminder.requested.v1": "reminder",
    "notice.requested.v1": "notice",
    "suspend.requested.v1": "suspend",
    "restore.requested.v1": "restore",
}


def _contacts(raw: list[dict[str, Any]]) -> list[domain.ContactInfo]:
    return [
        domain.ContactInfo(
            c["name"],
            c.get("email"),
            c.get("phone"),
            c.get("language", "cs"),
            tuple(c.get("categories", [])),
            bool(c.get("owner")),
        )
        for c in raw
    ]


class Notify:
    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics

    async def on_contract(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.ContractUpserted)
        await unit.conn.execute(
            Q.upsert_contacts,
            data.contract,
            data.customer_name,
            data.language,
            [c.model_dump(mode="json") for c in data.contacts],
        )

    async def on_request(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        kind = KINDS[event.type]
        payload = data.model_dump(mode="json")
        contract = payload["contract"]
        row = await unit.conn.fetchrow(Q.get_contacts, contract)
        if row is None:
            raise LookupError(f"no contacts known for contract {contract}")
        channels = tuple(payload.get("channels") or ["email"])
        targets = domain.recipients(kind, _contacts(row["contacts"]), channels)
        if not targets:
            unit.emit(
                self.topics.notifications,
                "notification.failed.v1",
                contract,
                ev.NotificationFailed(
                    contract=contract,
                    request_id=payload["request_id"],
                    kind=kind,
                    channel="email",
                    recipient="",
                    attempts=0,
                    error="no contact for this category",
                ),
            )
            return
        for r in targets:
            context = {**payload, "customer_name": row["customer_name"]}
            subject, body = templates.render(kind, r.language, context)
            await unit.conn.execute(
                Q.insert_delivery,
                contract,
                payload["request_id"],
                kind,
                r.channel,
                r.address,
                r.language,
                subject,
                body,
                unit.now,
            )
        await unit.conn.execute("SELECT pg_notify('notify_deliveries', '')")


class Sender:
    def __init__(self, settings: Settings, topics: Topics, pool: Any, clock: Clock) -> None:
        self.settings = settings
        self.topics = topics
        self.pool = pool
        self.clock = clock

    async def send_email(self, recipient: str, subject: str, body: str, key: str) -> None:
        msg = EmailMessage()
        msg["From"] = self.settings.mail_from
        msg["To"] = recipient
        msg["Subject"] = subject
        msg["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@billing>"
        msg.set_content(body)
        await aiosmtplib.send(
            msg,
            hostname=self.settings.smtp_host,
            port=self.settings.smtp_port,
            username=self.settings.smtp_username,
            password=self.settings.smtp_password,
            start_tls=self.settings.smtp_starttls,
            use_tls=self.settings.smtp_tls,
            timeout=10,
        )

    async def send_due(self, batch: int = 20) -> int:
        async with self.pool.acquire() as conn:
            await self.clock.refresh(conn)
            now = self.clock.now()
            async with conn.transaction():
                rows = await conn.fetch(Q.claim_due, now, batch)
                unit = Unit(conn, now, "/services/notify")
                for row in rows:
                    await self._deliver(unit, row)
                await unit.flush()
        return len(rows)

    async def _deliver(self, unit: Unit, row: Any) -> None:
        key = f"{row['contract']}|{row['request_id']}|{row['channel']}|{row['recipient']}"
        attempts = row["attempts"] + 1
        try:
            if row["channel"] != "email":
                raise NotImplementedError("SMS gateway not configured")
            await self.send_email(row["recipient"], row["subject"], row["body"], key)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if attempts >= self.settings.notify_max_attempts:
                await unit.conn.execute(Q.mark_failed, row["id"], error)
                unit.emit(
                    self.topics.notifications,
                    "notification.failed.v1",
                    row["contract"],
                    ev.NotificationFailed(
                        contract=row["contract"],
                        request_id=row["request_id"],
                        kind=row["kind"],
                        channel=row["channel"],
                        recipient=row["recipient"],
                        attempts=attempts,
                        error=error,
                    ),
                )
                log.error("delivery failed for good", key=key, error=error)
            else:
                delay = domain.backoff(attempts, self.settings.notify_retry_base)
                await unit.conn.execute(Q.mark_retry, row["id"], unit.now + delay, error)
                log.warning(
                    "delivery failed, will retry",
                    key=key,
                    error=error,
                    retry_in=delay.total_seconds(),
                )
            return
        await unit.conn.execute(Q.mark_sent, row["id"], unit.now)
        unit.emit(
            self.topics.notifications,
            "notification.sent.v1",
            row["contract"],
            ev.NotificationSent(
                contract=row["contract"],
                request_id=row["request_id"],
                kind=row["kind"],
                channel=row["channel"],
                recipient=row["recipient"],
                attempts=attempts,
            ),
        )

    async def run(self, poll_interval: float) -> None:
        listener = await self._listen()
        try:
            while True:
                try:
                    while await self.send_due() > 0:
                        pass
                except Exception as exc:
                    log.error("sender round failed", error=repr(exc))
                try:
                    await asyncio.wait_for(self.wakeup.wait(), poll_interval)
                except TimeoutError:
                    pass
                self.wakeup.clear()
        finally:
            await listener.close()

    async def _listen(self) -> Any:
        import asyncpg

        self.wakeup = asyncio.Event()
        conn = await asyncpg.connect(self.settings.database_url)
        await conn.add_listener("notify_deliveries", lambda *_: self.wakeup.set())
        await conn.add_listener("billing_clock", lambda *_: self.wakeup.set())
        return conn
