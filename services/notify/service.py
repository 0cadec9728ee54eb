"""Notify: turn dunning requests and invoicing's documents into deliveries (one per
recipient and channel, exactly once), and send them with retries.

A request becomes ``deliveries`` rows in the consumer's transaction (the unique key
contract + request id + channel + recipient makes "exactly once" a database guarantee);
the sender claims one due row at a time and leases it for a minute of real time (committed
before the send, so no other sender takes it meanwhile), sends it, and records the outcome
with the notification event in one transaction. When that commit fails after the server's
"OK" (PostgreSQL restarted), the sender records the delivery again on a new connection
instead of leaving it pending; only a crash of the sender itself between the "OK" and the
commit sends that one message again, when the lease runs out. (The chaos run found whole
claimed batches of 20 sent twice when a batch was one transaction, and then, with two
notify instances, a row claimed by the other instance while its sender waited for the
database to come back.) The Message-ID (e-mail) and
Idempotency-Key (SMS gateway) are derived from the delivery key so the receiving side can
recognise such a repeat.

SMS waits out the quiet hours in the customer's time zone; e-mail goes at any time.
Transient failures retry with exponential backoff; a permanent failure, or the last
attempt, marks the delivery failed, publishes ``notification.failed.v1`` and puts the
request that caused it on the dunning topic's DLQ with the reason. Every failed attempt
counts in ``billing_notify_failures_total{channel,reason}`` and leaves its reason on the
delivery. One message fails alone: an address the server refuses, one that fails the
contact rules (a CR/LF stored before they existed), a message that cannot be built, even
an unexpected error while recording one, never stops the other deliveries of the round.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, NamedTuple

from prometheus_client import Counter
from pydantic import BaseModel

from schemas import events as ev
from schemas.envelope import CloudEvent
from services.notify import domain, templates
from services.notify.channels import DeliveryError, Email, SmsGateway
from services.notify.settings import NotifySettings
from services.runtime import logs, sql
from services.runtime.clock import Clock
from services.runtime.consumer import TRANSIENT
from services.runtime.runs import Run
from services.runtime.settings import Topics
from services.runtime.unit import Unit

Q = sql.load(__file__)
SOURCE = "/services/notify"
# How long a claimed delivery is the claiming sender's (real time): past the SMTP and SMS
# timeouts, so a live sender always records its outcome first.
LEASE_SECONDS = 60.0
log = logs.get(__name__)
FAILURES = Counter(
    "billing_notify_failures_total",
    "Delivery attempts that failed, by channel and reason (channels.py lists the reasons)",
    ["channel", "reason"],
)

# Dunning's requests and the kind of message each asks for.
Request = (
    ev.ReminderRequested
    | ev.NoticeRequested
    | ev.SuspendRequested
    | ev.RestrictRequested
    | ev.RestoreRequested
)
KINDS: dict[type[BaseModel], str] = {
    ev.ReminderRequested: "reminder",
    ev.NoticeRequested: "notice",
    ev.SuspendRequested: "suspend",
    ev.RestrictRequested: "restrict",
    ev.RestoreRequested: "restore",
}
# voip's announcements about a prepaid balance, told by e-mail and SMS; each event is one
# request (its id in the request id), so a balance that runs low twice is told twice.
VOIP_KINDS: dict[type[BaseModel], str] = {
    ev.VoipCreditLow: "voip_credit_low",
    ev.VoipCreditExhausted: "voip_credit_exhausted",
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


def _outcome(row: Any, attempts: int) -> dict[str, Any]:
    return {
        "contract": row["contract"],
        "request_id": row["request_id"],
        "kind": row["kind"],
        "channel": row["channel"],
        "recipient": row["recipient"],
        "attempts": attempts,
    }


class NewDelivery(NamedTuple):
    """A ``deliveries`` row as ``insert_delivery`` takes it ($1-$12 in this order)."""

    contract: str
    request_id: str
    kind: str
    channel: str  # email, sms
    recipient: str
    language: str
    subject: str  # "" for an SMS
    body: str
    html: str | None  # an e-mail's HTML part
    request: bytes  # the request event, for the dead letter if the delivery fails for good
    next_attempt_at: datetime
    created_at: datetime


class QuietHoursPolicy:
    """Validated at start: a wrong setting fails the worker, naming the setting."""

    def __init__(self, settings: NotifySettings) -> None:
        try:
            self.default = domain.QuietHours.parse(settings.sms_quiet_hours)
        except ValueError as e:
            raise ValueError(f"BILLING_SMS_QUIET_HOURS: {e}") from None
        self.by_country: dict[str, domain.QuietHours] = {}
        for country, text in settings.sms_quiet_hours_by_country.items():
            try:
                self.by_country[country] = domain.QuietHours.parse(text)
            except ValueError as e:
                raise ValueError(f"BILLING_SMS_QUIET_HOURS_BY_COUNTRY[{country}]: {e}") from None

    def send_at(self, now: datetime, country: str | None) -> datetime:
        quiet = self.by_country.get(country or "", self.default)
        return domain.sms_send_at(now, domain.zone_for(country), quiet)


class Notify:
    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self.quiet = QuietHoursPolicy(settings)

    async def on_contract(self, unit: Unit, run: Run[ev.ContractUpserted]) -> None:
        for data in run:
            unit.stage(
                Q.upsert_contacts,
                data.contract,
                data.customer_name,
                data.language,
                [c.model_dump(mode="json") for c in data.contacts],
                data.country,
            )

    async def on_request(self, unit: Unit, run: Run[Request]) -> None:
        """A run of dunning's requests at once: one read of the contacts of every
        contract in it (not a round trip per request), then each request's deliveries,
        queued in order."""
        rows = await self._contacts_of(unit, run)
        queued = [
            self._request(unit, e, KINDS[type(d)], d.model_dump(mode="json"), rows.get(d.contract))
            for e, d in run.pairs()
        ]
        if any(queued):
            unit.stage(Q.wake_sender)

    async def on_document(self, unit: Unit, run: Run[ev.DocumentReady]) -> None:
        """Invoices and credit notes with their PDF and ISDOC: one e-mail to each billing
        contact, the attachments kept once per document (the sender attaches them)."""
        rows = await self._contacts_of(unit, run)
        queued = []
        for event, data in run.pairs():
            for i, a in enumerate(data.attachments):
                unit.stage(
                    Q.insert_attachment, data.contract, data.number, i, a.filename,
                    a.media_type, a.content, a.sha256,
                )  # fmt: skip
            payload = {
                **data.model_dump(mode="json", exclude={"attachments"}),
                "request_id": data.number,
            }
            queued.append(self._request(unit, event, data.kind, payload, rows.get(data.contract)))
        if any(queued):
            unit.stage(Q.wake_sender)

    async def on_voip_credit(
        self, unit: Unit, run: Run[ev.VoipCreditLow | ev.VoipCreditExhausted]
    ) -> None:
        """A prepaid VoIP balance ran low or out: tell the billing contacts, once per
        announcement (the deliveries' key holds the event's id)."""
        rows = await self._contacts_of(unit, run)
        queued = []
        for event, data in run.pairs():
            kind = VOIP_KINDS[type(data)]
            payload = {
                **data.model_dump(mode="json"),
                "request_id": f"{kind}:{event.id}",
                "channels": ["email", "sms"],
            }
            queued.append(self._request(unit, event, kind, payload, rows.get(data.contract)))
        if any(queued):
            unit.stage(Q.wake_sender)

    @staticmethod
    async def _contacts_of(unit: Unit, run: Run[Any]) -> dict[str, Any]:
        """The contacts row of each contract a run names, in one read (contacts staged
        earlier in this batch are written first)."""
        await unit.drain()
        contracts = sorted({d.contract for d in run})
        return {r["contract"]: r for r in await unit.conn.fetch(Q.get_contacts_of, contracts)}

    def _request(
        self, unit: Unit, event: CloudEvent, kind: str, payload: dict[str, Any], row: Any
    ) -> bool:
        """Queue the deliveries of one request (False: nobody to tell, said as an event).
        ``payload``: the request's data as JSON, with its ``request_id``."""
        request_id = payload["request_id"]
        contract = payload["contract"]
        if row is None:
            raise LookupError(f"no contacts known for contract {contract}")
        channels = tuple(payload.get("channels") or ["email"])
        targets = domain.recipients(kind, _contacts(row["contacts"]), channels)
        if not targets:
            unit.emit(
                contract,
                ev.NotificationFailed(
                    contract=contract,
                    request_id=request_id,
                    kind=kind,
                    channel="email",
                    recipient="",
                    attempts=0,
                    error="no contact for this category",
                ),
            )
            return False
        context = {**payload, "customer_name": row["customer_name"]}
        request = event.model_dump_json().encode()
        for r in targets:
            msg = templates.render(kind, r.language, context, self.settings.company_name)
            if r.channel == "sms":
                body, subject, html = msg.sms, "", None
                due = self.quiet.send_at(unit.now, row["country"])
            else:
                body, subject, html = msg.text, msg.subject, msg.html
                due = unit.now
            delivery = NewDelivery(
                contract=contract,
                request_id=request_id,
                kind=kind,
                channel=r.channel,
                recipient=r.address,
                language=msg.language,
                subject=subject,
                body=body,
                html=html,
                request=request,
                next_attempt_at=due,
                created_at=unit.now,
            )
            unit.stage(Q.insert_delivery, *delivery)
        return True


def _key(row: Any) -> str:
    """The delivery's key: the Message-ID and the SMS gateway's Idempotency-Key derive
    from it, so a receiver can recognise a repeat."""
    return f"{row['contract']}|{row['request_id']}|{row['channel']}|{row['recipient']}"


class Sender:
    def __init__(self, settings: NotifySettings, topics: Topics, pool: Any, clock: Clock) -> None:
        self.settings = settings
        self.topics = topics
        self.pool = pool
        self.clock = clock
        self.email = Email(settings)
        self.sms = SmsGateway(settings)
        self.quiet = QuietHoursPolicy(settings)
        self.wakeup = asyncio.Event()

    async def send_due(self, batch: int = 20) -> int:
        """Send up to ``batch`` due deliveries, each in a transaction of its own; the number
        sent or failed (a postponed SMS does not count)."""
        done = 0
        for _ in range(batch):
            try:
                outcome = await self._send_one()
            except TRANSIENT:
                raise  # the database: the round ends, the leases keep the rows
            except Exception as exc:
                # Not one delivery's failure (those are recorded): its recording failed.
                # The row stays leased and comes due again when the lease runs out; the
                # round goes on with the others.
                FAILURES.labels("unknown", "internal").inc()
                log.error("delivery not recorded; retried after its lease", error=repr(exc))
                done += 1
                continue
            if outcome is None:
                break
            done += outcome != "postponed"
        return done

    async def _send_one(self) -> str | None:
        """Claim (and lease), send and record one due delivery; None when none is due."""
        taken: tuple[Any, datetime] | None = None  # the row the server took, unrecorded
        try:
            async with self.pool.acquire() as conn:
                await self.clock.refresh(conn)
                now = self.clock.now()
                rows = await conn.fetch(Q.claim_due, now, 1, LEASE_SECONDS)  # commits
                if not rows:
                    return None
                files = []
                if rows[0]["kind"] in templates.DOCUMENT_KINDS:
                    files = await conn.fetch(
                        Q.attachments_of, rows[0]["contract"], rows[0]["request_id"]
                    )
                result = await self._transmit(rows[0], now, files)
                if result is None:
                    taken = (rows[0], now)
                async with conn.transaction():
                    unit = Unit(conn, now, SOURCE)
                    outcome = await self._record(unit, rows[0], result)
                    await unit.flush()
                return outcome
        except TRANSIENT:
            if taken is None:
                raise
        await self._record_sent(*taken)
        return "sent"

    async def _record_sent(self, row: Any, now: datetime, wait: float = 120.0) -> None:
        """Record a delivery the server took whose transaction did not commit, as soon as
        the database answers again (a pending row would be sent a second time)."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    unit = Unit(conn, now, SOURCE)
                    if await conn.execute(Q.mark_sent, row["id"], now) == "UPDATE 1":
                        self._announce_sent(unit, row, row["attempts"] + 1)
                    await unit.flush()
                log.warning("delivery recorded after its commit failed", id=row["id"])
                return
            except TRANSIENT as exc:
                if asyncio.get_running_loop().time() > deadline:
                    log.error("delivery sent but not recorded", id=row["id"], error=repr(exc))
                    raise
                await asyncio.sleep(0.5)

    def _announce_sent(self, unit: Unit, row: Any, attempts: int) -> None:
        unit.emit(row["contract"], ev.NotificationSent(**_outcome(row, attempts)))

    async def _transmit(
        self, row: Any, now: datetime, files: list[Any]
    ) -> datetime | DeliveryError | None:
        """Hand one claimed delivery to its channel, touching no database (so that what the
        server took is known before any statement can fail): None when it was taken, the
        error when not, or the time to try again for an SMS that came due at night."""
        if row["channel"] == "sms":
            allowed = self.quiet.send_at(now, row["country"])
            if allowed > now:
                return allowed
        try:
            if row["channel"] == "sms":
                await self.sms.send(row["recipient"], row["body"], _key(row))
            else:
                msg = self.email.build(
                    row["recipient"], row["subject"], row["body"], row["html"], _key(row),
                    [(f["filename"], f["media_type"], f["content"]) for f in files],
                )  # fmt: skip
                await self.email.send(msg)
        except DeliveryError as exc:
            return exc
        except Exception as exc:  # a bug or a library's surprise: this message's failure
            log.exception("unexpected error sending a delivery", key=_key(row))
            return DeliveryError(f"{type(exc).__name__}: {exc}", False, "internal")
        return None

    async def _record(self, unit: Unit, row: Any, result: datetime | DeliveryError | None) -> str:
        """Record what ``_transmit`` gave: postponed, failed (or to retry) or sent."""
        if isinstance(result, datetime):
            await unit.conn.execute(Q.postpone, row["id"], result)
            return "postponed"
        attempts = row["attempts"] + 1
        if isinstance(result, DeliveryError):
            await self._failed(unit, row, attempts, result, _key(row))
            return "failed"
        await unit.conn.execute(Q.mark_sent, row["id"], unit.now)
        self._announce_sent(unit, row, attempts)
        return "sent"

    async def _failed(
        self, unit: Unit, row: Any, attempts: int, exc: DeliveryError, key: str
    ) -> None:
        error = str(exc)
        FAILURES.labels(row["channel"], exc.reason).inc()
        if exc.permanent or attempts >= self.settings.notify_max_attempts:
            await unit.conn.execute(Q.mark_failed, row["id"], error, exc.reason)
            failed = ev.NotificationFailed(**_outcome(row, attempts), error=error)
            unit.emit(row["contract"], failed)
            why = "permanent failure" if exc.permanent else f"{attempts} attempts"
            # the request's own topic: dunning's, invoicing's for a document, voip's
            topic = (
                self.topics.documents
                if row["kind"] in templates.DOCUMENT_KINDS
                else self.topics.voip
                if row["kind"] in templates.VOIP_KINDS
                else None
            )
            unit.dead_letter(
                Topics.dlq(topic or self.topics.dunning),
                row["contract"].encode(),
                row["request"],
                f"{row['channel']} to {row['recipient']} failed ({why}): {error}",
            )
            log.error(
                "delivery failed for good",
                key=key, error=error, reason=exc.reason, attempts=attempts,
            )  # fmt: skip
            return
        retry_at = unit.now + domain.backoff(attempts, self.settings.notify_retry_base)
        if row["channel"] == "sms":
            retry_at = self.quiet.send_at(retry_at, row["country"])
        await unit.conn.execute(Q.mark_retry, row["id"], retry_at, error, exc.reason)
        log.warning(
            "delivery failed, will retry",
            key=key, error=error, reason=exc.reason, retry_at=retry_at.isoformat(),
        )  # fmt: skip

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

        conn = await asyncpg.connect(self.settings.database_url)
        await conn.add_listener("notify_deliveries", lambda *_: self.wakeup.set())
        await conn.add_listener("billing_clock", lambda *_: self.wakeup.set())
        return conn
