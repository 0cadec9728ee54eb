"""The customer zone in-process against a real PostgreSQL and a real SMTP server
(aiosmtpd): its pages through aiohttp's test client, its read model fed through its own
handlers, its mail sent by its own sender. Shared by the security tests and the browser
test's set-up."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel

from schemas import events as ev
from schemas.envelope import envelope
from services.devstack.mailsink import MailSink
from services.devstack.stack import free_port
from services.runtime import db
from services.runtime.runs import Run
from services.runtime.settings import Topics
from services.runtime.unit import Unit
from services.runtime.worker import Runtime
from services.zone.mail import Sender
from services.zone.settings import ZoneSettings
from services.zone.web import Pages
from services.zone.worker import subscriptions
from tests.integration.test_notify_delivery import FixedClock

NOW = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
CSRF = re.compile(r'name="csrf" value="([^"]*)"')
LINK = re.compile(r"(https?://\S+/link/\S+)")


@dataclass
class Zone:
    rt: Runtime[ZoneSettings]
    pages: Pages
    mail: MailSink
    clock: FixedClock
    server: TestServer
    clients: list[TestClient] = field(default_factory=list)

    async def client(self) -> TestClient:
        """A browser of its own (its own cookie jar)."""
        c = TestClient(self.server)
        await c.start_server()
        self.clients.append(c)
        return c

    async def feed(self, *items: BaseModel) -> None:
        """Events into the zone's read model through its own handlers, one unit each."""
        handlers = subscriptions(self.rt)
        async with self.rt.db.acquire() as conn:
            for data in items:
                event = envelope(_type(data), "/test", None, data, self.clock.now())
                async with conn.transaction():
                    unit = Unit(conn, self.clock.now(), "/test")
                    await handlers[type(data)](unit, Run.of(event, data))
                    await unit.flush()

    async def deliver(self) -> int:
        return await Sender(self.rt.settings, self.rt.db, self.clock).send_due()

    def link_to(self, address: str) -> str:
        """The path of the last link e-mailed to ``address``."""
        mails = self.mail.to(address)
        assert mails, f"no mail to {address}"
        (url,) = LINK.findall(mails[-1].body)
        return "/" + url.split("/", 3)[3]

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.rt.db.acquire() as conn:
            return list(await conn.fetch(query, *args))


def _type(data: BaseModel) -> str:
    from schemas.registry import type_of

    return type_of(type(data))


async def token(client: TestClient, path: str) -> str:
    """The form token of the page at ``path`` (the GET also gives the browser its cookie)."""
    async with client.get(path, allow_redirects=False) as resp:
        found = CSRF.findall(await resp.text())
    assert found and found[0], f"no form token on {path}"
    return found[0]


async def post(
    client: TestClient, path: str, data: dict[str, Any], page: str | None = None, **kw: Any
) -> ClientResponse:
    """A form posted as a browser would: the token from the page it is on."""
    form = {"csrf": await token(client, page or _page_of(path)), **data}
    return await client.post(path, data=form, allow_redirects=False, **kw)


def _page_of(path: str) -> str:
    if path.startswith("/users/") and path != "/users/invite":
        return "/users/" + path.split("/")[2]
    if path in ("/users/invite",):
        return "/users"
    if path in ("/logout", "/language"):
        return "/login"
    return path


async def login(client: TestClient, name: str, password: str) -> ClientResponse:
    return await post(client, "/login", {"name": name, "password": password})


async def set_password(zone: Zone, client: TestClient, address: str, password: str) -> None:
    await zone.deliver()
    path = zone.link_to(address)
    resp = await post(client, path, {"password": password, "password2": password}, page=path)
    assert resp.status == 303, await resp.text()


async def owner_with_login(
    zone: Zone, client: TestClient, contract: str, address: str, password: str
) -> None:
    """Request access with the contract and its owner's e-mail, set the password, log in."""
    await post(client, "/access", {"contract": contract, "email": address})
    await set_password(zone, client, address, password)
    resp = await login(client, address, password)
    assert resp.status == 303 and resp.headers["Location"] == "/info", await resp.text()


def contract(number: str, owner: str, name: str = "Zákazník", others: tuple[str, ...] = ()) -> Any:
    contacts = [ev.Contact(name=name, email=owner, owner=True)]
    contacts += [ev.Contact(name=f"Kontakt {o}", email=o) for o in others]
    return ev.ContractUpserted(
        contract=number,
        customer_name=name,
        currency="CZK",
        monthly_fee_minor=49900,
        contacts=contacts,
    )


def invoice(contract: str, number: str, due: date, amount: int = 49900) -> ev.InvoiceIssued:
    return ev.InvoiceIssued(
        contract=contract,
        invoice_number=number,
        vs=contract,
        ss=number[-6:].lstrip("0") or "1",
        period="2026-12",
        issued_on=due - timedelta(days=14),
        due_on=due,
        amount_minor=amount,
        currency="CZK",
        account="2001234561/2010",
    )


def payment(contract: str, number: str, ss: str, amount: int, tx: str) -> ev.PaymentMatched:
    return ev.PaymentMatched(
        contract=contract,
        account="2001234561/2010",
        bank_tx_id=tx,
        booked_on=date(2026, 12, 10),
        amount_minor=amount,
        currency="CZK",
        allocations=[ev.Allocation(invoice_number=number, ss=ss, amount_minor=amount, rule="ss")],
        credit_minor=0,
        credit_balance_minor=0,
        rule="ss",
    )


@asynccontextmanager
async def running_zone(database_url: str, **settings: Any) -> AsyncIterator[Zone]:
    await db.migrate(database_url, "zone")
    port = free_port()
    sink = MailSink("127.0.0.1", port)
    sink.start()
    values: dict[str, Any] = {
        "environment": "development",
        "database_url": database_url,
        "smtp_port": port,
        "zone_cookie_secure": False,
        "zone_public_url": "http://zone.example/",
        "company_name": "NetISP",
        **settings,
    }
    zone_settings = ZoneSettings(**values)
    clock = FixedClock(NOW)
    pool = await db.create_pool(database_url, "zone", max_size=4)
    rt: Runtime[ZoneSettings] = Runtime("zone", zone_settings, Topics(), clock, pool)
    pages = Pages(rt)
    server = TestServer(pages.app())
    zone = Zone(rt, pages, sink, clock, server)
    try:
        yield zone
    finally:
        for c in zone.clients:
            await c.close()
        await server.close()
        await pool.close()
        sink.stop()
