"""Contacts and support in the customer zone (issue 30 items 2 and 3), against a real
PostgreSQL and a real SMTP server (aiosmtpd): a contact edited in the zone goes out as an
event, invoicing (the owner of contract data) applies it, audits it and publishes the
contract again, and notify sends the next reminder to the new address; loading the
contracts file again keeps the customer's change unless the file changed the contacts
itself; a support request reaches the operator's address with its sender identified and
is acknowledged; link requests are throttled per mailbox and per address with the same
answer whether or not anything exists; another customer's contact by direct URL is a
404; every new form needs its token."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from schemas import events as ev
from schemas.envelope import CloudEvent, envelope
from schemas.registry import EVENT_TYPES
from services.invoicing import contracts_file
from services.invoicing import service as invoicing
from services.invoicing.zone_contacts import on_contact_change
from services.notify.service import Notify
from services.notify.service import Sender as NotifySender
from services.notify.settings import NotifySettings
from services.runtime import db
from services.runtime.runs import Run
from services.runtime.settings import Topics
from services.runtime.unit import Unit
from tests.integration.test_zone import PASSWORD
from tests.integration.zone_harness import (
    NOW,
    Zone,
    contract,
    login,
    owner_with_login,
    post,
    running_zone,
    set_password,
    token,
)

SUPPORT = "podpora@isp.example"


def _file(tmp: Path, accountant: str, name: str = "contracts.json") -> Path:
    """A contracts file: 1001 (Alena, owner) with an accountant, and 1002 (Bohumil)."""

    def one(number: str, customer: str, email: str, *others: dict[str, Any]) -> dict[str, Any]:
        owner = {"name": customer, "email": email, "categories": [], "owner": True}
        return {
            "contract": number,
            "customer_name": customer,
            "monthly_fee_minor": 49900,
            "currency": "CZK",
            "contacts": [owner, *others],
        }

    ucto = {"name": "Účetní", "email": accountant, "categories": ["billing", "dunning"]}
    ucto2 = {"name": "Účetní 1002", "email": "ucto1002@example.com", "categories": ["billing"]}
    tech = {"name": "Technik", "email": "technik@example.com", "categories": ["technical"]}
    contracts = [
        one("1001", "Alena Svobodová", "alena@example.com", ucto),
        one("1002", "Bohumil Novák", "bohumil@example.com", ucto2, tech),
    ]
    path = tmp / name
    path.write_text(json.dumps(contracts), encoding="utf-8")
    return path


@dataclass
class Chain:
    """The zone, invoicing and notify on one database, events carried between their
    outboxes and handlers by hand (what the relay and consumers do in a running system)."""

    zone: Zone
    invoicing: asyncpg.Connection
    notify_conn: asyncpg.Connection
    notify: Notify
    sender: NotifySender
    seen: dict[str, int] = field(default_factory=dict)

    async def load(self, path: Path) -> tuple[int, int]:
        return await invoicing.load_contracts_file(
            self.invoicing, contracts_file.records(path), self.zone.clock.now()
        )

    async def published(self, conn: asyncpg.Connection, schema: str) -> list[CloudEvent]:
        """The events ``schema`` wrote to its outbox since the last look."""
        rows = await conn.fetch(
            "SELECT id, value FROM outbox WHERE id > $1 ORDER BY id", self.seen.get(schema, 0)
        )
        if rows:
            self.seen[schema] = rows[-1]["id"]
        return [CloudEvent.model_validate(json.loads(bytes(r["value"]))) for r in rows]

    async def _apply(self, conn: asyncpg.Connection, handler: Any, event: CloudEvent) -> None:
        data = EVENT_TYPES[event.type].model_validate(event.data)
        async with conn.transaction():
            unit = Unit(conn, self.zone.clock.now(), "/test", Topics())
            await handler(unit, Run.of(event, data))
            await unit.flush()

    async def relay(self) -> list[str]:
        """Carry what the zone and invoicing published to whom consumes it; the types."""
        types = []
        async with self.zone.rt.db.acquire() as zone_conn:
            from_zone = await self.published(zone_conn, "zone")
        for event in from_zone:
            types.append(event.type)
            if event.type == "contacts.change_requested.v1":
                await self._apply(self.invoicing, on_contact_change, event)
        for event in await self.published(self.invoicing, "invoicing"):
            types.append(event.type)
            if event.type == "contract.upserted.v1":
                data = ev.ContractUpserted.model_validate(event.data)
                await self.zone.feed(data)
                await self._apply(self.notify_conn, self.notify.on_contract, event)
        return types

    async def reminder(self, step: str) -> None:
        overdue = [
            ev.OverdueInvoice(invoice_number="2026000001", vs="1001", ss="2026000001",
                              due_on=date(2026, 12, 15), open_minor=49900, currency="CZK")
        ]  # fmt: skip
        data = ev.ReminderRequested(
            contract="1001", request_id=f"1001:{step}", step=step, policy="notice-then-suspend",
            overdue_minor=49900, currency="CZK", invoices=overdue, account="2001234561/2010",
            decided_at=self.zone.clock.now(), channels=["email"],
        )  # fmt: skip
        event = envelope("reminder.requested.v1", "/test", "1001", data, self.zone.clock.now())
        await self._apply(self.notify_conn, self.notify.on_request, event)
        while await self.sender.send_due():
            pass

    async def alena(self, tmp: Path) -> TestClient:
        """The contracts loaded and published; Alena, 1001's owner, logged in."""
        await self.load(_file(tmp, "ucto@example.com"))
        await self.relay()
        alena = await self.zone.client()
        await owner_with_login(self.zone, alena, "1001", "alena@example.com", PASSWORD)
        return alena

    async def trail(self) -> list[tuple[str, str, str | None]]:
        rows = await self.invoicing.fetch(
            "SELECT operator, action, reason FROM operator_actions ORDER BY id"
        )
        return [(r["operator"], r["action"], r["reason"]) for r in rows]


@asynccontextmanager
async def chain(database_url: str, **zone_settings: Any) -> AsyncIterator[Chain]:
    async with running_zone(
        database_url, zone_support_email=SUPPORT, zone_operator_language="en", **zone_settings
    ) as zone:
        await db.migrate(database_url, "invoicing")
        await db.migrate(database_url, "notify")
        inv = await db.connect(database_url, "invoicing")
        notify_conn = await db.connect(database_url, "notify")
        notify_pool = await db.create_pool(database_url, "notify", max_size=2)
        settings = NotifySettings(
            database_url=database_url, smtp_port=zone.rt.settings.smtp_port, company_name="NetISP"
        )
        c = Chain(
            zone,
            inv,
            notify_conn,
            Notify(settings),
            NotifySender(settings, Topics(), notify_pool, zone.clock),
        )
        try:
            yield c
        finally:
            await inv.close()
            await notify_conn.close()
            await notify_pool.close()


VERSION = re.compile(r'name="version" value="([0-9a-f]+)"')


async def version_of(client: TestClient, position: int) -> str:
    """The version of a contact its page posts back with a change or removal."""
    async with client.get(f"/contacts/{position}") as page:
        versions = set(VERSION.findall(await page.text()))
    [version] = versions  # the change and the removal form post the same
    return version


async def change(
    client: TestClient, position: int, data: dict[str, Any], action: str = ""
) -> ClientResponse:
    """A contact's form posted from its page, as shown now."""
    path = f"/contacts/{position}" + (f"/{action}" if action else "")
    version = await version_of(client, position)
    return await post(client, path, {**data, "version": version}, page=f"/contacts/{position}")


async def _contact_position(zone: Zone, contract: str, email: str) -> int:
    [row] = await zone.fetch(
        "SELECT position FROM contacts_on_record WHERE contract = $1 AND email = $2",
        contract,
        email,
    )
    return int(row["position"])


async def test_a_contact_edited_in_the_zone_gets_the_next_reminder(
    database_url: str, tmp_path: Path
) -> None:
    async with chain(database_url) as c:
        path = _file(tmp_path, "stary@example.com")
        assert await c.load(path) == (2, 2)
        assert await c.relay() == ["contract.upserted.v1"] * 2
        alena = await c.zone.client()
        await owner_with_login(c.zone, alena, "1001", "alena@example.com", PASSWORD)
        async with alena.get("/contacts") as page:
            text = await page.text()
        assert page.status == 200 and "stary@example.com" in text
        assert "invoices and reminders" in text or "faktury a upomínky" in text
        position = await _contact_position(c.zone, "1001", "stary@example.com")

        # A bad edit: every problem named by its field, nothing sent.
        resp = await change(
            alena, position, {"name": "", "email": "not an address", "phone": "", "language": "xx"}
        )
        text = await resp.text()
        assert resp.status == 400 and "Traceback" not in text
        for field_ in ("name", "email", "language"):
            assert f'id="problem-{field_}"' in text, field_
        assert await c.relay() == []

        # The edit: a new address, the categories as they were shown.
        shown_before = await version_of(alena, position)
        resp = await change(
            alena,
            position,
            {"name": "Účetní", "email": "nova@example.com", "phone": "602 000 001",
             "language": "sk", "categories": ["invoices"]},
        )  # fmt: skip
        assert resp.status == 200, await resp.text()
        assert await c.relay() == ["contacts.change_requested.v1", "contract.upserted.v1"]
        async with alena.get("/contacts") as page:
            text = await page.text()
        assert "nova@example.com" in text and "+420602000001" in text
        # A form from the page as it was before: refused, nothing sent.
        stale = {"name": "Účetní", "email": "jiny@example.com", "language": "cs",
                 "version": shown_before}  # fmt: skip
        resp = await post(alena, f"/contacts/{position}", stale, page="/contacts")
        assert resp.status == 409 and await c.relay() == []
        assert "stary@example.com" not in text
        # Invoicing owns it: the contract's data changed, the trail says who asked.
        data = await c.invoicing.fetchval("SELECT data FROM contracts WHERE contract = '1001'")
        assert [x["email"] for x in data["contacts"]] == ["alena@example.com", "nova@example.com"]
        assert data["contacts"][1]["categories"] == ["billing", "dunning"]
        assert await c.trail() == [("zone:alena@example.com", "zone_contacts_changed", None)]
        [audit] = await c.zone.fetch("SELECT * FROM audit WHERE action LIKE 'contact_%'")
        assert (audit["action"], audit["actor"]) == (
            "contact_change_requested",
            "alena@example.com",
        )

        # The next reminder goes to the new address (and the owner), not the old one.
        await c.reminder("reminder-1")
        to = sorted(r for m in c.zone.mail.messages for r in m.recipients)
        assert "nova@example.com" in to and "stary@example.com" not in to

        # The same file again: the customer's change stays, nothing is published.
        assert (await c.load(path))[1] == 0
        assert await c.relay() == []
        data = await c.invoicing.fetchval("SELECT data FROM contracts WHERE contract = '1001'")
        assert data["contacts"][1]["email"] == "nova@example.com"
        # A file that changes the contacts itself wins, and the trail says whose it replaced.
        assert (await c.load(_file(tmp_path, "jina@example.com", "v2.json")))[1] == 1
        assert await c.relay() == ["contract.upserted.v1"]
        data = await c.invoicing.fetchval("SELECT data FROM contracts WHERE contract = '1001'")
        assert data["contacts"][1]["email"] == "jina@example.com"
        assert (await c.trail())[-1][:2] == ("contracts file", "zone_contacts_replaced")


async def test_add_remove_and_a_stale_change_refused(database_url: str, tmp_path: Path) -> None:
    async with chain(database_url) as c:
        alena = await c.alena(tmp_path)
        resp = await post(
            alena,
            "/contacts/add",
            {"name": "NOC", "email": "noc@example.com", "language": "en",
             "categories": ["access", "technical"]},
            page="/contacts",
        )  # fmt: skip
        assert resp.status == 200
        await c.relay()
        data = await c.invoicing.fetchval("SELECT data FROM contracts WHERE contract = '1001'")
        assert data["contacts"][2]["categories"] == ["access", "technical"]
        assert not data["contacts"][2]["owner"]

        # The owner's contact cannot be removed; another's can.
        owner = await _contact_position(c.zone, "1001", "alena@example.com")
        resp = await change(alena, owner, {}, "remove")
        assert resp.status == 403
        noc = await _contact_position(c.zone, "1001", "noc@example.com")
        ucto = await _contact_position(c.zone, "1001", "ucto@example.com")
        # Two changes sent before either is applied: invoicing finds each contact by what
        # it was, not by its place, so the removal shifts nothing the other change needs.
        assert (await change(alena, noc, {}, "remove")).status == 200
        resp = await change(
            alena,
            ucto,
            {"name": "Účetní", "email": "ucto@example.com", "language": "cs",
             "categories": ["invoices", "support"]},
        )  # fmt: skip
        assert resp.status == 200
        assert await c.relay() == [
            "contacts.change_requested.v1",
            "contacts.change_requested.v1",
            "contract.upserted.v1",
            "contract.upserted.v1",
        ]
        data = await c.invoicing.fetchval("SELECT data FROM contracts WHERE contract = '1001'")
        assert [x["email"] for x in data["contacts"]] == ["alena@example.com", "ucto@example.com"]
        assert data["contacts"][1]["categories"] == ["billing", "dunning", "support"]
        # Now a change made from the page as it was before that edit: stale, refused.
        stale = ev.ContactChangeRequested(
            contract="1001", request_id="stale-1", action="change",
            before=ev.Contact(name="Účetní", email="ucto@example.com",
                              categories=["billing", "dunning"]),
            after=ev.Contact(name="Účetní", email="x@example.com"),
            requested_by="alena@example.com", requested_at=NOW,
        )  # fmt: skip
        await c._apply(
            c.invoicing,
            on_contact_change,
            envelope("contacts.change_requested.v1", "/test", "1001", stale, NOW),
        )
        assert await c.relay() == []
        assert (await c.trail())[-1] == (
            "zone:alena@example.com",
            "zone_contacts_refused",
            "the contact is no longer as shown (changed meanwhile)",
        )


async def test_own_details_changed_on_the_information_page_and_the_operator_told(
    database_url: str, tmp_path: Path
) -> None:
    async with chain(database_url) as c:
        alena = await c.alena(tmp_path)
        async with alena.get("/info") as page:
            assert 'id="details-form"' in await page.text()
        details = {"name": "Alena Svobodová", "email": "alena@example.com", "language": "cs"}
        bad = await post(alena, "/info/details", {**details, "phone": "12"}, page="/info")
        assert bad.status == 400 and 'id="problem-phone"' in await bad.text()
        same = await post(alena, "/info/details", details, page="/info")
        assert same.status == 200 and await c.relay() == []
        resp = await post(
            alena, "/info/details", {**details, "phone": "+421 902 000 001"}, page="/info"
        )
        assert resp.status == 200
        assert await c.relay() == ["contacts.change_requested.v1", "contract.upserted.v1"]
        data = await c.invoicing.fetchval("SELECT data FROM contracts WHERE contract = '1001'")
        owner = data["contacts"][0]
        assert (owner["phone"], owner["owner"], owner["categories"]) == ("+421902000001", True, [])
        await c.zone.deliver()
        [told] = c.zone.mail.to(SUPPORT)
        assert told.subject == "Customer 1001 changed their contact details"
        assert "Changed by: alena@example.com" in told.body and "+421902000001" in told.body
        assert told.message["Reply-To"] == "alena@example.com"


async def test_another_customers_contact_by_direct_url_is_not_found(
    database_url: str, tmp_path: Path
) -> None:
    """A contact is named in the URL by its position among the customer's contacts; the
    customer is always the one acted for. 1002's technician is at a position 1001 does not
    have: to Alena it is a contact that does not exist, to read, change or remove."""
    async with chain(database_url) as c:
        alena = await c.alena(tmp_path)
        theirs = await _contact_position(c.zone, "1002", "technik@example.com")
        assert theirs == 2
        async with alena.get(f"/contacts/{theirs}") as a, alena.get("/contacts/99999") as b:
            assert a.status == b.status == 404 and await a.text() == await b.text()
        async with alena.get("/contacts") as page:
            assert "technik@example.com" not in await page.text()
        change = {"name": "X", "email": "x@example.com", "language": "cs"}
        for path in (f"/contacts/{theirs}", f"/contacts/{theirs}/remove"):
            resp = await post(alena, path, change, page="/info")
            assert resp.status == 404, path
        assert await c.relay() == []
        data = await c.invoicing.fetchval("SELECT data FROM contracts WHERE contract = '1002'")
        assert data["contacts"][2]["email"] == "technik@example.com"


async def test_support_request_reaches_the_operator_with_its_sender_identified(
    database_url: str, tmp_path: Path
) -> None:
    async with chain(
        database_url,
        zone_help_phone="+420 800 123 456",
        zone_help_email="pomoc@isp.example",
        zone_help_hours="Po-Pá 8-18",
    ) as c:
        alena = await c.alena(tmp_path)
        async with alena.get("/support") as page:
            text = await page.text()
        assert page.status == 200 and "+420 800 123 456" in text and "Po-Pá 8-18" in text
        async with alena.get("/info") as page:  # the footer on every page
            assert "pomoc@isp.example" in await page.text()
        resp = await post(alena, "/support", {"subject": "", "text": "x", "about": "1002"})
        text = await resp.text()
        assert resp.status == 400
        assert 'id="problem-subject"' in text and 'id="problem-about"' in text
        resp = await post(
            alena,
            "/support",
            {"subject": "Nejde internet", "text": "Od rána nic.\nRouter bliká.",
             "about": "1001", "service": "Lipová 5"},
        )  # fmt: skip
        assert resp.status == 200, await resp.text()
        await c.zone.deliver()
        [to_operator] = c.zone.mail.to(SUPPORT)
        assert to_operator.message["Reply-To"] == "alena@example.com"
        body = to_operator.body.replace("\r\n", "\n")
        for expected in (
            "Alena Svobodová <alena@example.com>",
            "Customer: Alena Svobodová",
            "Contract: 1001",
            "Lipová 5",
            "Od rána nic.\nRouter bliká.",
        ):
            assert expected in body, expected
        [ack] = c.zone.mail.to("alena@example.com")[-1:]
        assert "Nejde internet" in ack.body
        [stored] = await c.zone.fetch("SELECT * FROM support_requests")
        assert (stored["contract"], stored["sender_email"]) == ("1001", "alena@example.com")
        assert await c.relay() == ["support.requested.v1"]
        [published] = [
            r["value"] for r in await c.zone.fetch("SELECT value FROM outbox ORDER BY id DESC")
        ][:1]
        data = json.loads(bytes(published))["data"]
        assert (data["sender_email"], data["sender_name"], data["contract"]) == (
            "alena@example.com",
            "Alena Svobodová",
            "1001",
        )
        actions = [r["action"] for r in await c.zone.fetch("SELECT action FROM audit")]
        assert "support_requested" in actions


async def test_support_needs_its_right_and_a_configured_address(
    database_url: str, tmp_path: Path
) -> None:
    async with running_zone(database_url) as zone:  # no support address
        await zone.feed(contract("1001", "alena@example.com"))
        alena = await zone.client()
        await owner_with_login(zone, alena, "1001", "alena@example.com", PASSWORD)
        async with alena.get("/support") as page:
            assert 'id="support-closed"' in await page.text()
        resp = await post(alena, "/support", {"subject": "a", "text": "b", "about": "1001"})
        assert resp.status == 503
        resp = await post(
            alena, "/users/invite", {"email": "eva@example.com", "rights": "invoices"}
        )
        eva = await zone.client()
        await set_password(zone, eva, "eva@example.com", PASSWORD)
        await login(eva, "eva@example.com", PASSWORD)
        for path in ("/support", "/contacts"):
            async with eva.get(path) as page:
                assert page.status == 403, path
        resp = await post(
            eva, "/info/details", {"name": "X", "email": "x@example.com"}, page="/info"
        )
        assert resp.status == 403


async def test_link_requests_are_throttled_per_mailbox_and_per_address(
    database_url: str,
) -> None:
    """Each request counts, whether or not it matched anything: the owner's inbox gets at
    most the limit of links in the window, and a mailbox that is nobody's is throttled
    the same way, with the same page, so the answer still says nothing of what exists."""
    async with running_zone(database_url, zone_throttle_account=3, zone_throttle_address=8) as zone:
        await zone.feed(contract("1001", "alena@example.com"))
        browser = await zone.client()
        owner = {"contract": "1001", "email": "alena@example.com"}
        for _ in range(3):
            assert (await post(browser, "/access", owner)).status == 200
        throttled_owner = await post(browser, "/reset", {"email": "alena@example.com"})
        for _ in range(3):
            assert (await post(browser, "/reset", {"email": "nobody@example.com"})).status == 200
        throttled_nobody = await post(browser, "/reset", {"email": "nobody@example.com"})
        assert throttled_owner.status == throttled_nobody.status == 429
        assert await throttled_owner.text() == await throttled_nobody.text()
        assert await zone.deliver() == 3
        assert len(zone.mail.to("alena@example.com")) == 3
        # The address: 8 requests counted from 127.0.0.1 by now, its limit, lock any mailbox.
        for mailbox in ("third@example.com", "fourth@example.com"):
            assert (await post(browser, "/reset", {"email": mailbox})).status == 200
        assert (await post(browser, "/reset", {"email": "fifth@example.com"})).status == 429
        # The window passes.
        zone.clock.at = NOW + timedelta(minutes=16)
        assert (await post(browser, "/access", owner)).status == 200
        actions = [r["action"] for r in await zone.fetch("SELECT action FROM audit")]
        assert actions.count("link_throttled") == 3


async def test_every_new_form_needs_its_token(database_url: str, tmp_path: Path) -> None:
    async with chain(database_url) as c:
        alena = await c.alena(tmp_path)
        own = await token(alena, "/info")
        form = {"name": "X", "email": "x@example.com", "language": "cs", "subject": "s",
                "text": "t", "about": "1001"}  # fmt: skip
        for path in ("/contacts/add", "/contacts/1", "/contacts/1/remove", "/info/details",
                     "/support"):  # fmt: skip
            for extra, headers in (
                ({}, {}),
                ({"csrf": "0" * 64}, {}),
                ({"csrf": own}, {"Origin": "https://evil.example"}),
            ):
                async with alena.post(
                    path, data={**form, **extra}, headers=headers, allow_redirects=False
                ) as resp:
                    assert resp.status == 403, (path, extra, headers)
        assert await c.relay() == []
        assert await c.zone.fetch("SELECT 1 FROM support_requests") == []
