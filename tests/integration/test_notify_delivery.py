"""Notify against real peers: PostgreSQL, aiosmtpd SMTP servers (plain, failing, STARTTLS
with auth, implicit TLS) and a local HTTP SMS gateway. Routing by category, languages,
HTML parts, quiet hours, dedupe under redelivery, retries, final failure to the DLQ."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from schemas import events as ev
from schemas.envelope import envelope
from services.devstack.stack import free_port
from services.notify.service import Notify, Sender
from services.notify.settings import NotifySettings
from services.runtime import db
from services.runtime.runs import Run, handle
from services.runtime.settings import Topics
from services.runtime.unit import Unit

MORNING = datetime(2026, 12, 18, 8, 0, tzinfo=UTC)  # 09:00 in Prague
NIGHT = datetime(2026, 12, 18, 22, 30, tzinfo=UTC)  # 23:30 in Prague


# --- peers -----------------------------------------------------------------------------------


@dataclass
class SmtpSink:
    """Accepts mail; answers 451 to the first ``fail_first`` DATA commands."""

    fail_first: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    calls: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.calls += 1
        if self.calls <= self.fail_first:
            return "451 4.3.0 try again later"
        self.messages.append(message_from_bytes(envelope.content, policy=default))  # type: ignore[arg-type]
        return "250 OK"


def smtp_server(handler: SmtpSink, **kwargs: Any) -> tuple[Controller, int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, port


@dataclass
class Gateway:
    statuses: list[int] = field(default_factory=list)  # answers in order, then 200
    received: list[tuple[dict[str, Any], dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((json.loads(await request.read()), dict(request.headers)))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"ok": status == 200}, status=status)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at

    async def refresh(self, conn: asyncpg.Connection) -> None:
        return None


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


# --- the harness -----------------------------------------------------------------------------


class Harness:
    def __init__(
        self, conn: asyncpg.Connection, pool: asyncpg.Pool, settings: NotifySettings
    ) -> None:
        self.conn = conn
        self.settings = settings
        self.notify = Notify(settings)
        self.clock = FixedClock(MORNING)
        self.sender = Sender(settings, Topics(), pool, self.clock)
        self.outbox: list[tuple[str, str, dict[str, str]]] = []

    async def unit(self, fn: Any, at: datetime) -> None:
        async with self.conn.transaction():
            unit = Unit(self.conn, at, "/test")
            await fn(unit)
            await unit.flush()

    async def contract(self, contract: str = "1001", country: str = "CZ") -> None:
        data = ev.ContractUpserted(
            contract=contract,
            customer_name="Jan Novák",
            country=country,  # type: ignore[arg-type]
            currency="CZK",
            monthly_fee_minor=49900,
            contacts=[
                ev.Contact(name="Owner", email="owner@example.cz", phone="+420602000001",
                           language="cs", categories=[], owner=True),
                ev.Contact(name="Accountant", email="ucto@example.sk", language="sk",
                           categories=["billing", "dunning"]),
                ev.Contact(name="Admin", email="admin@example.com", phone="+420602000003",
                           language="en", categories=["technical"]),
            ],
        )  # fmt: skip
        event = _ev("contract.upserted.v1", data)
        await self.unit(lambda u: self.notify.on_contract(u, Run.of(event, data)), MORNING)

    async def request(self, kind: str, step: str, at: datetime, channels: list[str]) -> Any:
        invoices = [
            ev.OverdueInvoice(invoice_number="2026000001", vs="1001", ss="2026000001",
                              due_on=date(2026, 12, 15), open_minor=49900, currency="CZK")
        ]  # fmt: skip
        common = dict(
            contract="1001", request_id=f"1001:{step}", step=step, policy="notice-then-suspend",
            overdue_minor=49900, currency="CZK", invoices=invoices, account="2001234561/2010",
            decided_at=at,
        )  # fmt: skip
        data: Any
        if kind == "reminder":
            data = ev.ReminderRequested(**common, channels=channels)  # type: ignore[arg-type]
            type_ = "reminder.requested.v1"
        else:
            data = ev.NoticeRequested(**common)  # type: ignore[arg-type]
            type_ = "notice.requested.v1"
        event = _ev(type_, data)
        await self.unit(lambda u: self.notify.on_request(u, Run.of(event, data)), at)
        return event

    async def send(self, at: datetime) -> int:
        self.clock.at = at
        total = 0
        while n := await self.sender.send_due():
            total += n
        return total

    async def deliveries(self) -> list[asyncpg.Record]:
        return await self.conn.fetch(
            "SELECT channel, recipient, language, status, attempts, next_attempt_at, last_error"
            " FROM deliveries ORDER BY channel, recipient"
        )

    async def events(self) -> list[tuple[str, str, dict[str, str]]]:
        rows = await self.conn.fetch("SELECT topic, event_type, headers FROM outbox ORDER BY id")
        return [(r["topic"], r["event_type"], dict(r["headers"])) for r in rows]


def _ev(type_: str, data: Any) -> Any:
    return envelope(type_, "/test", "1001", data, MORNING)


async def harness(
    url: str, settings: NotifySettings
) -> tuple[Harness, asyncpg.Connection, asyncpg.Pool]:
    await db.migrate(url, "notify")
    conn = await db.connect(url, "notify")
    pool = await db.create_pool(url, "notify", max_size=2)
    h = Harness(conn, pool, settings)
    await h.contract()
    return h, conn, pool


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    gw = Gateway()
    app = web.Application()
    app.router.add_post("/sms", gw.handle)
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield gw, f"http://127.0.0.1:{port}/sms"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def settings_for(url: str, smtp_port: int, gateway_url: str, **kw: Any) -> NotifySettings:
    return NotifySettings(
        database_url=url, smtp_port=smtp_port, sms_gateway_url=gateway_url,
        sms_gateway_headers={"Authorization": "Bearer sms-token"}, company_name="NetISP",
        notify_retry_base=60.0, notify_max_attempts=3, **kw,
    )  # fmt: skip


# --- tests -----------------------------------------------------------------------------------


def test_routing_languages_html_sms_quiet_hours_and_dedupe(
    database_url: str, gateway: tuple[Gateway, str]
) -> None:
    gw, gw_url = gateway
    sink = SmtpSink()
    controller, port = smtp_server(sink)
    try:
        asyncio.run(_routing(database_url, settings_for(database_url, port, gw_url), sink, gw))
    finally:
        controller.stop()


async def _routing(url: str, settings: NotifySettings, sink: SmtpSink, gw: Gateway) -> None:
    h, conn, pool = await harness(url, settings)
    try:
        event = await h.request("reminder", "reminder-1", MORNING, ["email", "sms"])
        rows = await h.deliveries()
        # owner (always gets dunning) and accountant (dunning category); not the admin
        assert [(r["channel"], r["recipient"], r["language"]) for r in rows] == [
            ("email", "owner@example.cz", "cs"),
            ("email", "ucto@example.sk", "sk"),
            ("sms", "+420602000001", "cs"),
        ]
        # the same request again (redelivery, a restart): nothing new
        data = ev.ReminderRequested.model_validate(event.data)
        await h.unit(lambda u: h.notify.on_request(u, Run.of(event, data)), MORNING)
        assert len(await h.deliveries()) == 3
        assert await h.send(MORNING) == 3
        assert await h.send(MORNING) == 0  # exactly once
        by_to = {m["To"]: m for m in sink.messages}
        owner = by_to["owner@example.cz"]
        assert owner["Subject"] == "Připomínka neuhrazené faktury (1001)"
        text = owner.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        html = owner.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
        assert "499,00\u00a0Kč" in text and "VS 1001, SS 2026000001" in text
        assert "2001234561/2010" in text and "<table" in html and "2026000001" in html
        assert by_to["ucto@example.sk"]["Subject"].startswith("Pripomienka neuhradenej faktúry")
        [(body, headers)] = gw.received
        assert body["to"] == "+420602000001" and "VS 1001" in body["text"]
        assert body["sender"] == "ISP" and headers["Authorization"] == "Bearer sms-token"
        assert headers["Idempotency-Key"] == body["id"]

        # At 23:30 in Prague the e-mail goes, the SMS waits for 08:00.
        await h.request("reminder", "reminder-2", NIGHT, ["email", "sms"])
        assert await h.send(NIGHT) == 2  # two e-mails
        sms = [
            r for r in await h.deliveries() if r["channel"] == "sms" and r["status"] == "pending"
        ]
        assert [r["next_attempt_at"] for r in sms] == [datetime(2026, 12, 19, 7, 0, tzinfo=UTC)]
        assert await h.send(datetime(2026, 12, 19, 6, 59, tzinfo=UTC)) == 0
        assert await h.send(datetime(2026, 12, 19, 7, 0, tzinfo=UTC)) == 1
        assert len(gw.received) == 2
        sent = [e for e in await h.events() if e[1] == "notification.sent.v1"]
        assert len(sent) == 6
    finally:
        await conn.close()
        await pool.close()


def test_retries_then_final_failure_to_the_dlq(
    database_url: str, gateway: tuple[Gateway, str]
) -> None:
    gw, gw_url = gateway
    sink = SmtpSink(fail_first=2)
    controller, port = smtp_server(sink)
    try:
        asyncio.run(_failures(database_url, settings_for(database_url, port, gw_url), sink, gw))
    finally:
        controller.stop()


async def _failures(url: str, settings: NotifySettings, sink: SmtpSink, gw: Gateway) -> None:
    h, conn, pool = await harness(url, settings)
    try:
        gw.statuses = [503, 503, 503]  # the gateway is down for all 3 attempts
        await h.request("reminder", "reminder-1", MORNING, ["email", "sms"])
        t = MORNING
        await h.send(t)  # e-mails: 451 twice (one per recipient); SMS: 503
        rows = {r["recipient"]: r for r in await h.deliveries()}
        assert rows["owner@example.cz"]["status"] == "pending"
        assert "SMTP 451" in rows["owner@example.cz"]["last_error"]
        assert rows["+420602000001"]["next_attempt_at"] == t + timedelta(seconds=60)
        for step in (60, 120 + 60):  # backoff 60 s, then 120 s
            t = t + timedelta(seconds=step)
            await h.send(t)
        rows = {r["recipient"]: r for r in await h.deliveries()}
        assert (rows["owner@example.cz"]["status"], rows["owner@example.cz"]["attempts"]) == (
            "sent",
            2,
        )
        assert (rows["+420602000001"]["status"], rows["+420602000001"]["attempts"]) == ("failed", 3)
        events = await h.events()
        failed = [e for e in events if e[1] == "notification.failed.v1"]
        letters = [e for e in events if e[1] == "dead-letter"]
        assert len(failed) == 1 and len(letters) == 1
        topic, _, headers = letters[0]
        assert topic == "billing.dunning.dlq"
        assert "sms to +420602000001 failed (3 attempts): gateway HTTP 503" in headers["dlq-reason"]
        value = await conn.fetchval("SELECT value FROM outbox WHERE event_type = 'dead-letter'")
        assert json.loads(value)["type"] == "reminder.requested.v1"  # the request itself

        # A gateway's 4xx is final at once: no pointless retries.
        gw.statuses = [400]
        await h.request("notice", "notice", t, ["sms"])  # notices go by e-mail only
        await h.request("reminder", "reminder-2", t, ["sms"])
        await h.send(t)
        row = await conn.fetchrow(
            "SELECT status, attempts FROM deliveries WHERE request_id = '1001:reminder-2'"
        )
        assert (row["status"], row["attempts"]) == ("failed", 1)
    finally:
        await conn.close()
        await pool.close()


def test_starttls_with_auth_and_implicit_tls(
    database_url: str, gateway: tuple[Gateway, str], tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"billing",
            b"s3cret",
        )
        return AuthResult(success=ok)

    sink = SmtpSink()
    starttls, port = smtp_server(
        sink, tls_context=server_ctx, require_starttls=True, auth_required=True,
        authenticator=authenticator,
    )  # fmt: skip
    implicit_sink = SmtpSink()
    implicit, implicit_port = smtp_server(implicit_sink, ssl_context=server_ctx)
    _, gw_url = gateway
    try:
        good = settings_for(
            database_url, port, gw_url, smtp_starttls=True, smtp_ca_file=str(cert),
            smtp_username="billing", smtp_password="s3cret",
        )  # fmt: skip
        asyncio.run(_one_mail(database_url, good, "sent"))
        assert len(sink.messages) == 2
        tls = settings_for(
            database_url, implicit_port, gw_url, smtp_tls=True, smtp_ca_file=str(cert)
        )
        asyncio.run(_one_mail(database_url, tls, "sent"))
        assert len(implicit_sink.messages) == 2
    finally:
        starttls.stop()
        implicit.stop()


async def _one_mail(url: str, settings: NotifySettings, expect: str) -> None:
    h, conn, pool = await harness(url, settings)
    try:
        await conn.execute("TRUNCATE deliveries, outbox")
        await h.request("reminder", "reminder-1", MORNING, ["email"])
        await h.send(MORNING)
        statuses = {r["status"] for r in await h.deliveries()}
        assert statuses == {expect}, [r["last_error"] for r in await h.deliveries()]
    finally:
        await conn.close()
        await pool.close()


def test_a_new_contract_and_its_reminder_in_one_batch(database_url: str) -> None:
    """Contacts are staged writes: a reminder later in the same consumed batch must see
    the contract that arrived just before it (contracts and dunning share one agent)."""

    async def go() -> None:
        settings = NotifySettings(database_url=database_url)
        h, conn, pool = await harness(database_url, settings)
        try:
            contract = ev.ContractUpserted(
                contract="1009", customer_name="Eva", currency="CZK", monthly_fee_minor=1,
                contacts=[ev.Contact(name="Eva", email="eva@example.cz", owner=True)],
            )  # fmt: skip
            reminder = ev.ReminderRequested(
                contract="1009", request_id="1009:reminder-1", step="reminder-1",
                policy="notice-then-suspend", overdue_minor=100, currency="CZK", invoices=[],
                account="2001234561/2010", decided_at=MORNING, channels=["email"],
            )  # fmt: skip
            items = [
                (h.notify.on_contract, _ev("contract.upserted.v1", contract), contract),
                (h.notify.on_request, _ev("reminder.requested.v1", reminder), reminder),
            ]
            await h.unit(lambda u: handle(u, items), MORNING)
            rows = await conn.fetch("SELECT recipient FROM deliveries WHERE contract = '1009'")
            assert [r["recipient"] for r in rows] == ["eva@example.cz"]
        finally:
            await conn.close()
            await pool.close()

    asyncio.run(go())


def test_a_run_of_requests_in_one_batch_equals_them_one_at_a_time(database_url: str) -> None:
    """Requests for two contracts interleaved (one whose contacts take no dunning mail):
    the same deliveries, in the same order, and the same events as one at a time."""

    async def go() -> None:
        h, conn, pool = await harness(database_url, NotifySettings(database_url=database_url))
        try:
            techie = ev.ContractUpserted(
                contract="1002", customer_name="Petr", currency="CZK", monthly_fee_minor=1,
                contacts=[ev.Contact(name="IT", email="it@example.cz", categories=["technical"])],
            )  # fmt: skip
            event = _ev("contract.upserted.v1", techie)
            await h.unit(lambda u: h.notify.on_contract(u, Run.of(event, techie)), MORNING)

            def request(kind: str, contract: str, step: str) -> tuple[Any, Any, Any]:
                common: dict[str, Any] = dict(
                    contract=contract, request_id=f"{contract}:{step}", step=step,
                    policy="notice-then-suspend", overdue_minor=49900, currency="CZK",
                    invoices=[], account="2001234561/2010", decided_at=MORNING,
                )  # fmt: skip
                data: Any
                if kind == "reminder":
                    data = ev.ReminderRequested(**common, channels=["email", "sms"])
                elif kind == "notice":
                    data = ev.NoticeRequested(**common)
                else:
                    data = ev.RestoreRequested(
                        contract=contract, request_id=f"{contract}:{step}", reason="paid",
                        decided_at=MORNING,
                    )  # fmt: skip
                return h.notify.on_request, _ev(f"{kind}.requested.v1", data), data

            script = [
                request("reminder", "1001", "r1"), request("restore", "1002", "x1"),
                request("notice", "1001", "n1"), request("reminder", "1002", "r1"),
                request("restore", "1001", "x1"),
            ]  # fmt: skip

            async def outcome() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
                deliveries = [
                    tuple(r)
                    for r in await conn.fetch(
                        "SELECT contract, request_id, kind, channel, recipient, language,"
                        " subject, body FROM deliveries ORDER BY id"
                    )
                ]
                events = [
                    (r["event_type"], json.loads(r["value"])["data"])
                    for r in await conn.fetch("SELECT event_type, value FROM outbox ORDER BY id")
                ]
                await conn.execute("TRUNCATE deliveries, outbox")
                return deliveries, events

            await conn.execute("TRUNCATE deliveries, outbox")
            for item in script:
                await h.unit(lambda u, item=item: handle(u, [item]), MORNING)
            one_by_one = await outcome()
            await h.unit(lambda u: handle(u, script), MORNING)
            assert await outcome() == one_by_one
            deliveries, events = one_by_one
            assert [(d[0], d[2], d[3], d[4]) for d in deliveries] == [
                ("1001", "reminder", "email", "owner@example.cz"),
                ("1001", "reminder", "sms", "+420602000001"),
                ("1001", "reminder", "email", "ucto@example.sk"),
                ("1001", "notice", "email", "owner@example.cz"),
                ("1001", "notice", "email", "ucto@example.sk"),
                ("1001", "restore", "email", "owner@example.cz"),
                ("1001", "restore", "email", "ucto@example.sk"),
            ]
            assert [(t, e["contract"], e["kind"]) for t, e in events] == [
                ("notification.failed.v1", "1002", "restore"),
                ("notification.failed.v1", "1002", "reminder"),
            ]
        finally:
            await conn.close()
            await pool.close()

    asyncio.run(go())


def test_a_commit_lost_after_the_server_took_the_mail_sends_it_once(
    database_url: str, gateway: tuple[Gateway, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL goes away between the SMTP server's "OK" and the commit that records it:
    the sender records the delivery again on a new connection instead of leaving it pending,
    so the next round does not send it a second time (the chaos run found such repeats)."""
    _, gw_url = gateway
    sink = SmtpSink()
    controller, port = smtp_server(sink)
    try:
        asyncio.run(_commit_lost(database_url, settings_for(database_url, port, gw_url), sink,
                                 monkeypatch))  # fmt: skip
    finally:
        controller.stop()


async def _commit_lost(
    url: str, settings: NotifySettings, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    import services.notify.service as notify_service

    h, conn, pool = await harness(url, settings)
    try:
        await h.request("reminder", "reminder-1", MORNING, ["email"])
        expected = len(await h.deliveries())
        lost = {"left": 1}
        real_flush = notify_service.Unit.flush

        async def flush_then_lose_the_connection(self: Unit) -> None:
            await real_flush(self)
            if lost["left"] and self.conn.is_in_transaction() and sink.messages:
                lost["left"] -= 1
                raise asyncpg.exceptions.ConnectionDoesNotExistError("server closed")

        monkeypatch.setattr(notify_service.Unit, "flush", flush_then_lose_the_connection)
        await h.send(MORNING)
        await h.send(MORNING + timedelta(minutes=5))
        assert lost["left"] == 0  # the loss happened
        rows = await h.deliveries()
        assert [r["status"] for r in rows] == ["sent"] * expected
        assert len(sink.messages) == expected  # each recipient once
        ids = [m["Message-ID"] for m in sink.messages]
        assert len(set(ids)) == len(ids)
        sent_events = [e for e in await h.events() if e[1] == "notification.sent.v1"]
        assert len(sent_events) == expected
    finally:
        await conn.close()
        await pool.close()


def test_a_claimed_delivery_is_no_other_senders_until_its_lease_runs_out(
    database_url: str, gateway: tuple[Gateway, str]
) -> None:
    """Two notify instances: a delivery one sender claimed (committed before it sends) is
    not claimed by the other while the lease runs, even when the first sender's transaction
    is gone (PostgreSQL restarted); once the lease has run out, it is due again."""
    _, gw_url = gateway
    asyncio.run(_lease(database_url, settings_for(database_url, free_port(), gw_url)))


async def _lease(url: str, settings: NotifySettings) -> None:
    import services.notify.service as notify_service

    h, conn, pool = await harness(url, settings)
    try:
        await h.request("reminder", "reminder-1", MORNING, ["email"])
        q = notify_service.Q
        first = await conn.fetch(q.claim_due, MORNING, 10, 60.0)
        assert first
        assert await conn.fetch(q.claim_due, MORNING, 10, 60.0) == []  # the other sender
        await conn.execute(
            "UPDATE deliveries SET leased_until = clock_timestamp() - interval '1 second'"
        )
        again = await conn.fetch(q.claim_due, MORNING, 10, 60.0)  # its sender died
        assert [r["id"] for r in again] == [r["id"] for r in first]
    finally:
        await conn.close()
        await pool.close()


@dataclass
class PickySink(SmtpSink):
    """Refuses some recipients at RCPT TO: 550 for good, 451 for now."""

    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"


def _failures_counted(channel: str, reason: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "billing_notify_failures_total", {"channel": channel, "reason": reason}
    )
    return value or 0.0


def test_one_undeliverable_message_fails_alone(
    database_url: str, gateway: tuple[Gateway, str]
) -> None:
    """Among good recipients of one reminder: one the SMTP server refuses for good (550),
    one it defers (451), and one address with CR/LF that was stored before the contact
    rules existed (a header injection). The good ones are delivered in the same round; the
    refused and the injected fail at once, each with its reason, counted, dead-lettered;
    the deferred one is retried with backoff and given up after the last attempt."""
    _, gw_url = gateway
    sink = PickySink(
        refuse={"gone@example.com": "550 5.1.1 no such user", "full@example.com": "451 4.2.2 full"}
    )
    controller, port = smtp_server(sink)
    try:
        asyncio.run(_fails_alone(database_url, settings_for(database_url, port, gw_url), sink))
    finally:
        controller.stop()


async def _fails_alone(url: str, settings: NotifySettings, sink: PickySink) -> None:
    h, conn, pool = await harness(url, settings)
    injected = "evil@example.com\r\nBcc: victim@example.com"
    people = ["first@example.com", "gone@example.com", injected, "full@example.com",
              "last@example.com"]  # fmt: skip
    await conn.execute(  # as an older version stored them, past today's contact rules
        "UPDATE contacts SET contacts = $1 WHERE contract = '1001'",
        [{"name": p, "email": p, "owner": True, "categories": ["dunning"]} for p in people],
    )
    before = {
        r: _failures_counted("email", r)
        for r in ("recipient-refused", "header-injection", "deferred")
    }
    try:
        await h.request("reminder", "reminder-1", MORNING, ["email"])
        assert await h.send(MORNING) == 5  # one round: every delivery tried, none holds another
        rows = {r["recipient"]: r for r in await h.deliveries()}
        assert sorted(m["To"] for m in sink.messages) == ["first@example.com", "last@example.com"]
        assert [rows[p]["status"] for p in people] == [
            "sent", "failed", "failed", "pending", "sent"
        ]  # fmt: skip
        reasons = await conn.fetch(
            "SELECT recipient, failure_reason, attempts FROM deliveries ORDER BY id"
        )
        assert {r["recipient"]: (r["failure_reason"], r["attempts"]) for r in reasons} == {
            "first@example.com": (None, 1),
            "gone@example.com": ("recipient-refused", 1),
            injected: ("header-injection", 1),
            "full@example.com": ("deferred", 1),
            "last@example.com": (None, 1),
        }
        assert "550" in rows["gone@example.com"]["last_error"]
        assert "U+000D" in rows[injected]["last_error"]
        assert rows["full@example.com"]["next_attempt_at"] == MORNING + timedelta(seconds=60)
        assert all("victim" not in str(m) for m in sink.messages)
        letters = [e[2]["dlq-reason"] for e in await h.events() if e[1] == "dead-letter"]
        assert len(letters) == 2 and any("gone@example.com" in r for r in letters)
        assert {r: _failures_counted("email", r) - before[r] for r in before} == {
            "recipient-refused": 1, "header-injection": 1, "deferred": 1
        }  # fmt: skip

        # the deferred one: retried after 60 s, then 120 s, then given up (3 attempts)
        t = MORNING
        for step in (60, 120):
            t += timedelta(seconds=step)
            assert await h.send(t) == 1
        row = await conn.fetchrow(
            "SELECT status, attempts, failure_reason FROM deliveries"
            " WHERE recipient = 'full@example.com'"
        )
        assert tuple(row) == ("failed", 3, "deferred")
        assert _failures_counted("email", "deferred") - before["deferred"] == 3
        assert len(sink.messages) == 2
    finally:
        await conn.close()
        await pool.close()


def test_a_server_that_refuses_connections_is_retried(
    database_url: str, gateway: tuple[Gateway, str]
) -> None:
    """Connection refused is transient: the delivery waits for the backoff, not failed."""
    _, gw_url = gateway
    settings = settings_for(database_url, free_port(), gw_url)  # nothing listens there

    async def go() -> None:
        h, conn, pool = await harness(database_url, settings)
        try:
            await h.request("reminder", "reminder-1", MORNING, ["email"])
            await h.send(MORNING)
            rows = await conn.fetch(
                "SELECT status, failure_reason, next_attempt_at FROM deliveries"
            )
            assert {tuple(r) for r in rows} == {
                ("pending", "unreachable", MORNING + timedelta(seconds=60))
            }
        finally:
            await conn.close()
            await pool.close()

    asyncio.run(go())
