"""The customer zone's services, documents and access pages against a real PostgreSQL
(tests/integration/zone_harness.py), fed by what the other services publish:

- dunning publishes ``dunning.status`` at each change of a contract's situation, and only
  then; what the zone shows is what ``billing dunning explain`` tells the operator (the
  same facts: one function builds both);
- an invoice's PDF and ISDOC from ``document.ready``: downloads with their type, name and
  SHA-256, refused without the right, answering another customer's as a missing one, and
  never sending bytes that no longer match their hash;
- the payment QR code of an open invoice, with the payment data in text;
- the services page from ``contract.upserted``: each service, its state, device insurance
  billed until a date, the subscriber addresses.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import date
from typing import Any

import pytest

from schemas import events as ev
from services.cli import main as billing
from services.dunning.settings import DunningSettings
from services.runtime.clock import set_clock
from services.runtime.settings import get_settings
from tests.integration.test_dunning_scenarios import Sim, at, run
from tests.integration.zone_harness import (
    Zone,
    contract,
    invoice,
    login,
    owner_with_login,
    payment,
    post,
    running_zone,
    set_password,
)

PASSWORD = "correct horse battery"
DUE = date(2026, 12, 15)


def _statuses(log: list[tuple[str, str, dict[str, Any]]], contract: str) -> list[dict[str, Any]]:
    return [d for _, t, d in log if t == "dunning.status.v1" and d["contract"] == contract]


def _facts(status: dict[str, Any]) -> dict[str, Any]:
    """A status without the moment it was decided: what the customer is told."""
    return {k: v for k, v in status.items() if k != "decided_at"}


def _explain_json(database_url: str, contract: str, monkeypatch: Any, capsys: Any) -> Any:
    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    monkeypatch.setenv("BILLING_TEST_CLOCK", "true")
    get_settings.cache_clear()
    try:
        capsys.readouterr()
        billing(["dunning", "explain", contract, "--json"])
        return json.loads(capsys.readouterr().out)
    finally:
        get_settings.cache_clear()


def test_dunning_publishes_each_change_and_the_zone_shows_what_explain_says(
    database_url: str, monkeypatch: Any, capsys: Any
) -> None:
    log: list[tuple[str, str, dict[str, Any]]] = []

    async def until_suspended(s: Sim) -> None:
        await s.contract("1002")
        await s.contract("1001")  # pays before it is due: nothing to explain, ever
        await s.invoice("1002", "2026000002", DUE)
        await s.invoice("1001", "2026000001", DUE)
        await s.run_until(at("2026-12-10"))
        await s.settle("1001", "2026000001")
        await s.run_until(at("2026-12-26"))
        await s.acknowledge("1002")
        await s.run_until(at("2027-01-05"))
        await set_clock(s.conn, s.now)  # what the CLI reads as now (test clock)
        log.extend(s.log)

    run(database_url, until_suspended)
    assert _statuses(log, "1001") == []
    published = _statuses(log, "1002")
    # One explanation per change: reminder, second reminder, notice, its confirmation
    # (the suspension gets a date), the suspension; the timers in between publish nothing.
    assert [(s["stage"], [r["step"] for r in s["steps_reached"]]) for s in published] == [
        ("active", []),  # overdue since 15 December, the first reminder on the 18th
        ("active", ["reminder-1"]),
        ("active", ["reminder-1", "reminder-2"]),
        ("notice", ["reminder-1", "reminder-2", "notice"]),
        ("notice", ["reminder-1", "reminder-2", "notice"]),  # acknowledged: suspend dated
        ("suspended", ["reminder-1", "reminder-2", "notice", "suspend"]),
    ]
    last = published[-1]
    assert last["overdue_since"] == "2026-12-15" and last["overdue_minor"] == 49900
    assert [(i["invoice_number"], i["vs"], i["ss"]) for i in last["invoices"]] == [
        ("2026000002", "1002", "2026000002")
    ]
    assert last["account"] == DunningSettings().bank_accounts["CZK"] != ""
    assert published[4]["acknowledged_at"] is not None
    assert [u["action"] for u in published[4]["upcoming"]] == ["suspend"]

    # The operator's `billing dunning explain` tells the same facts the customer was sent.
    explained = _explain_json(database_url, "1002", monkeypatch, capsys)
    assert _facts(explained["status"]) == _facts(last)

    async def in_the_zone() -> None:
        async with running_zone(database_url) as zone:
            await zone.feed(contract("1002", "bohumil@example.com", "Bohumil Novák"))
            await zone.feed(*(ev.DunningStatus.model_validate(s) for s in published[:3]))
            browser = await zone.client()
            await owner_with_login(zone, browser, "1002", "bohumil@example.com", PASSWORD)
            # Reminded: why, what comes next (the notice) and what to pay.
            async with browser.get("/situation") as resp:
                page = await resp.text()
            assert resp.status == 200
            assert "Proč: 1 faktur(a) po splatnosti od 15. 12. 2026, celkem 499,00" in page
            assert "upomínka" in page and "upozornění (přesměrování webu)" in page
            await zone.feed(*(ev.DunningStatus.model_validate(s) for s in published[3:]))
            await zone.feed(ev.DunningStatus.model_validate(published[2]))  # late: ignored
            async with browser.get("/situation") as resp:
                page = await resp.text()
            assert "Váš přístup je pozastavený." in page
            for shown in ("2026000002", ">1002<", ">2026000002<", "499,00"):
                assert shown in page, shown
            assert "SPD*1.0*ACC:" in page and "*AM:499.00*CC:CZK*" in page
            assert "X-VS:1002*X-SS:2026000002" in page and "<svg" in page
            [row] = await zone.fetch("SELECT status FROM dunning_status WHERE contract = '1002'")
            assert _facts(row["status"]) == _facts(explained["status"])
            async with browser.get("/services") as resp:
                assert "pozastavený" in await resp.text()

    asyncio.run(in_the_zone())

    async def pays(s: Sim) -> None:
        s.log.clear()
        s.now = at("2027-01-05", 12)
        await s.settle("1002", "2026000002")
        log[:] = s.log

    run(database_url, pays)
    [restored] = _statuses(log, "1002")
    assert (restored["stage"], restored["invoices"], restored["upcoming"]) == ("active", [], [])

    async def restored_in_the_zone() -> None:
        async with running_zone(database_url) as zone:
            await zone.feed(ev.DunningStatus.model_validate(restored))
            browser = await zone.client()
            resp = await login(browser, "bohumil@example.com", PASSWORD)
            assert resp.status == 303
            async with browser.get("/situation") as resp:
                page = await resp.text()
            assert 'id="situation-fine"' in page and "SPD*" not in page

    asyncio.run(restored_in_the_zone())


def _document(number: str, contract_: str, pdf: bytes, isdoc: bytes) -> ev.DocumentReady:
    def attached(name: str, media: Any, content: bytes) -> ev.Attachment:
        digest = hashlib.sha256(content).hexdigest()
        return ev.Attachment(filename=name, media_type=media, sha256=digest, content=content)

    return ev.DocumentReady(
        contract=contract_,
        kind="invoice",
        number=number,
        issued_on=date(2026, 12, 1),
        amount_minor=49900,
        currency="CZK",
        due_on=DUE,
        attachments=[
            attached(f"{number}.pdf", "application/pdf", pdf),
            attached(f"{number}.isdoc", "application/xml", isdoc),
        ],
    )


async def _two_customers(zone: Zone) -> tuple[Any, Any]:
    await zone.feed(
        contract("1001", "alena@example.com", "Alena"),
        contract("1002", "bohumil@example.com", "Bohumil"),
        invoice("1001", "2026000001", DUE),
        invoice("1002", "2026000002", DUE),
    )
    alena, bohumil = await zone.client(), await zone.client()
    await owner_with_login(zone, alena, "1001", "alena@example.com", PASSWORD)
    await owner_with_login(zone, bohumil, "1002", "bohumil@example.com", PASSWORD)
    return alena, bohumil


PDF = b"%PDF-1.7\n% the invoice\n%%EOF\n"
ISDOC = b'<?xml version="1.0" encoding="UTF-8"?><Invoice/>'


async def test_invoice_documents_download_with_their_hash_and_only_for_their_customer(
    database_url: str,
) -> None:
    async with running_zone(database_url) as zone:
        alena, bohumil = await _two_customers(zone)
        async with alena.get("/invoices/2026000001") as resp:
            page = await resp.text()
        assert "Doklady ještě nejsou připraveny." in page and "download-pdf" not in page
        await zone.feed(_document("2026000001", "1001", PDF, ISDOC))
        async with alena.get("/invoices/2026000001") as resp:
            page = await resp.text()
        assert 'href="/invoices/2026000001/pdf"' in page
        assert 'href="/invoices/2026000001/isdoc"' in page
        for path, body, media in (
            ("/invoices/2026000001/pdf", PDF, "application/pdf"),
            ("/invoices/2026000001/isdoc", ISDOC, "application/xml"),
        ):
            async with alena.get(path) as resp:
                got = await resp.read()
                assert resp.status == 200 and got == body
                assert resp.content_type == media
                name = path.split("/")[2] + "." + path.rsplit("/", 1)[1]
                assert resp.headers["Content-Disposition"] == f'attachment; filename="{name}"'
                assert resp.headers["X-Content-SHA256"] == hashlib.sha256(body).hexdigest()

        # Another customer's document answers as one that does not exist, byte for byte.
        async with bohumil.get("/invoices/2026000001/pdf") as theirs:
            refused = (theirs.status, await theirs.text())
        async with bohumil.get("/invoices/2026999999/pdf") as missing:
            assert (missing.status, await missing.text()) == refused and refused[0] == 404
        async with alena.get("/invoices/2026000001/docx") as other:
            assert other.status == 404

        # A user without the right to see invoices gets neither the page nor the file.
        await post(alena, "/users/invite", {"email": "technik@example.com", "rights": "services"})
        technik = await zone.client()
        await set_password(zone, technik, "technik@example.com", PASSWORD)
        assert (await login(technik, "technik@example.com", PASSWORD)).status == 303
        for path in ("/invoices/2026000001/pdf", "/invoices/2026000001", "/situation"):
            async with technik.get(path) as resp:
                assert resp.status == 403, path
        async with technik.get("/services") as resp:
            assert resp.status == 200

        # Bytes that no longer hash to what they were archived under are never sent.
        async with zone.rt.db.acquire() as conn:
            await conn.execute(
                "UPDATE documents SET content = $1 WHERE media_type = 'application/pdf'",
                PDF.replace(b"invoice", b"INVOICE"),
            )
        async with alena.get("/invoices/2026000001/pdf") as resp:
            assert resp.status == 500 and b"%PDF" not in await resp.read()


async def test_open_invoice_shows_its_payment_qr_and_data_a_paid_one_none(
    database_url: str,
) -> None:
    async with running_zone(database_url) as zone:
        alena, _ = await _two_customers(zone)
        async with alena.get("/invoices/2026000001") as resp:
            page = await resp.text()
        assert "<svg" in page and 'data-kind="spayd"' in page
        spayd = page.split('class="qr-payload">')[1].split("<")[0]
        assert spayd.startswith("SPD*1.0*ACC:CZ")
        fields = dict(f.split(":", 1) for f in spayd.split("*")[2:])
        assert (fields["AM"], fields["X-VS"], fields["X-SS"]) == ("499.00", "1001", "1")
        assert ">2001234561/2010<" in page and ">499,00" in page
        await zone.feed(payment("1001", "2026000001", "1", 49900, "tx-1"))
        await zone.feed(
            ev.InvoiceSettled(
                contract="1001",
                invoice_number="2026000001",
                ss="1",
                amount_minor=49900,
                paid_minor=49900,
                currency="CZK",
                settled_on=DUE,
                within_tolerance_minor=0,
            )
        )
        async with alena.get("/invoices/2026000001") as resp:
            page = await resp.text()
        assert "<svg" not in page and 'id="to-pay"' not in page


@pytest.mark.parametrize("lang", ["cs", "en"])
async def test_services_page_each_service_its_state_and_the_addresses(
    database_url: str, lang: str
) -> None:
    async with running_zone(database_url) as zone:
        given = contract("1001", "alena@example.com", "Alena").model_copy(
            update={
                "subscribers": ev.Subscribers(
                    ipv4=["192.0.2.10"], ipv6=["2001:db8::10"], ipv6_prefixes=["2001:db8:10::/56"]
                ),
                "services": [
                    ev.ContractService(
                        kind="tariff", description="Internet 300/30", unit_price_minor=44900
                    ),
                    ev.ContractService(kind="voip", description="Telefon", unit_price_minor=9900),
                    ev.ContractService(
                        kind="insurance",
                        description="Router",
                        unit_price_minor=5000,
                        ends_on=date(2027, 3, 31),
                    ),
                    ev.ContractService(
                        kind="static_ip",
                        description="IP",
                        unit_price_minor=5000,
                        ends_on=date(2026, 11, 30),
                    ),
                ],
            }
        )
        await zone.feed(given)
        alena = await zone.client()
        alena.session.cookie_jar.update_cookies({"zone_language": lang})
        await owner_with_login(zone, alena, "1001", "alena@example.com", PASSWORD)
        async with alena.get("/services") as resp:
            page = await resp.text()
        assert resp.status == 200
        words = {
            "cs": ("Pojištění zařízení", "31. 3. 2027", "ukončena", "aktivní", "449,00"),
            "en": ("Device insurance", "31 Mar 2027", "ended", "active", "449.00"),
        }[lang]
        for word in (*words, "Internet 300/30", "Telefon", "192.0.2.10", "2001:db8:10::/56"):
            assert word in page, word
        assert page.count('class="service-state state-ended"') == 1
        assert page.count('class="service-state state-active"') == 3
