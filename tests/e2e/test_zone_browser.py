"""The customer zone in a real browser (Debian's chromium through Selenium), on the whole
running system: the zone learns customers and invoices from Kafka, mails its links
through the stack's SMTP server. A customer requests access, follows the e-mailed link,
sets a password and logs in; she invites a user with invoices hidden, who cannot see
them (no menu entry, the page and a direct URL refused) but sees payments; an operator
invites her into a second customer and she switches between the two. A customer in
dunning reads why, what comes next and what to pay (as `billing dunning explain` tells the
operator), with the payment QR code, and downloads the invoice's PDF. Screenshots go to
artifacts/."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from schemas import events as ev
from schemas.registry import ROUTES, event_of
from services.devstack.demo import Scenario
from services.devstack.stack import Stack
from services.runtime.settings import Topics

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
PASSWORD = "correct horse battery"
LINK = re.compile(r"(http://\S+/link/\S+)")


def _contract(number: str, name: str, owner: str) -> ev.ContractUpserted:
    return ev.ContractUpserted(
        contract=number,
        customer_name=name,
        language="cs",
        currency="CZK",
        monthly_fee_minor=49900,
        contacts=[ev.Contact(name=name, email=owner, owner=True)],
    )


def _invoice(contract: str, number: str, ss: str) -> ev.InvoiceIssued:
    return ev.InvoiceIssued(
        contract=contract, invoice_number=number, vs=contract, ss=ss, period="2026-12",
        issued_on=date(2026, 12, 1), due_on=date(2026, 12, 15), amount_minor=49900,
        currency="CZK", account="2001234561/2010",
    )  # fmt: skip


def _pdf(number: str) -> bytes:
    return f"%PDF-1.4\n% invoice {number}\n%%EOF\n".encode()


def _documents(contract: str, number: str) -> ev.DocumentReady:
    """The invoice's PDF and ISDOC as invoicing announces them (small stand-ins: the zone
    stores and serves bytes, it does not read them)."""
    isdoc = b'<?xml version="1.0" encoding="UTF-8"?><Invoice/>'
    files = [
        ev.Attachment(
            filename=f"{number}.{kind}",
            media_type=media,
            sha256=hashlib.sha256(body).hexdigest(),
            content=body,
        )
        for kind, media, body in (
            ("pdf", "application/pdf", _pdf(number)),
            ("isdoc", "application/xml", isdoc),
        )
    ]
    return ev.DocumentReady(
        contract=contract, kind="invoice", number=number, issued_on=date(2026, 12, 1),
        amount_minor=49900, currency="CZK", due_on=date(2026, 12, 15), attachments=files,
    )  # fmt: skip


async def publish(stack: Stack, *items: BaseModel) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        topics = Topics()
        for data in items:
            key: str = data.contract  # type: ignore[attr-defined]
            event = event_of("/test", key, data, datetime.now(UTC))
            topic = getattr(topics, ROUTES[type(data)][1])
            await producer.send_and_wait(topic, event.model_dump_json().encode(), key=key.encode())
    finally:
        await producer.stop()
    await Scenario(stack).quiet()


def link_mailed_to(stack: Stack, address: str, after: int = 0) -> str:
    """The link in the newest message with a link to ``address`` after the first ``after``
    of them (messages without a link, such as an invoice's, do not count)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mails = stack.mail.to(address)  # type: ignore[attr-defined]
        links = [found for m in mails if (found := LINK.findall(m.body))]
        if len(links) > after:
            (url,) = links[-1]
            return str(url)
        time.sleep(0.2)
    raise AssertionError(f"no mail to {address}")


def submitter(driver: Any) -> Any:
    """``submit(button)``: click it and wait until the page it leads to has replaced this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 15)

    def submit(button: str) -> None:
        old = driver.find_element(By.TAG_NAME, "html")
        driver.find_element(By.ID, button).click()
        wait.until(lambda d: old != d.find_element(By.TAG_NAME, "html"))

    return submit


def shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"zone-{name}.png"))


def test_access_invitation_hidden_invoices_and_two_customers(stack: Stack, driver: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    asyncio.run(
        publish(
            stack,
            _contract("5001", "Alena Svobodová", "alena@example.com"),
            _contract("5002", "Svobodová s.r.o.", "firma@example.com"),
            _invoice("5001", "2026005001", "5001"),
            _invoice("5002", "2026005002", "5002"),
            _documents("5001", "2026005001"),
        )
    )
    zone = f"http://127.0.0.1:{stack.cfg.zone_port}"
    submit = submitter(driver)
    wait = WebDriverWait(driver, 15)

    def log_in(name: str) -> None:
        driver.get(f"{zone}/login")
        driver.find_element(By.ID, "name").send_keys(name)
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        submit("login")

    def set_password(link: str) -> None:
        driver.get(link)
        for field in ("password", "password2"):
            driver.find_element(By.ID, field).send_keys(PASSWORD)
        submit("set-password")
        assert driver.find_element(By.ID, "status").text  # "password set, log in"

    # 1. Request access with the contract number and the e-mail on record.
    driver.get(f"{zone}/access")
    submit("lang-cs")  # chosen, and remembered by the browser (and the person, later)
    assert driver.find_element(By.TAG_NAME, "h1").text == "Žádost o přístup"
    driver.find_element(By.ID, "contract").send_keys("5001")
    driver.find_element(By.ID, "email").send_keys("alena@example.com")
    shot(driver, "1-request-access")
    submit("send")
    assert "5001" not in driver.page_source  # the answer names nothing
    set_password(link_mailed_to(stack, "alena@example.com"))
    shot(driver, "2-password-set")
    log_in("alena@example.com")
    assert driver.find_element(By.ID, "customer-name").text == "Alena Svobodová"
    driver.find_element(By.ID, "nav-invoices").click()
    row = driver.find_element(By.CSS_SELECTOR, "tr.invoice")
    assert row.find_element(By.CLASS_NAME, "vs").text == "5001"
    assert row.find_element(By.CLASS_NAME, "ss").text == "5001"
    assert row.find_element(By.CLASS_NAME, "amount").text == "499,00 Kč"
    shot(driver, "3-invoices")
    # The owner has the download links (once the zone has read document.ready, which
    # travels on its own topic: a loaded machine may show the invoice before its files).
    deadline = time.monotonic() + 30
    driver.get(f"{zone}/invoices/2026005001")
    while not driver.find_elements(By.ID, "download-pdf"):
        assert time.monotonic() < deadline, "the invoice's documents never showed"
        time.sleep(0.3)
        driver.get(f"{zone}/invoices/2026005001")
    assert driver.find_elements(By.ID, "download-isdoc")

    # 2. She invites a user who may see payments, not invoices.
    driver.find_element(By.ID, "nav-users").click()
    driver.find_element(By.ID, "invite-email").send_keys("cyril@example.com")
    driver.find_element(By.ID, "invite-right-payments").click()
    submit("invite")
    assert "cyril@example.com" in driver.find_element(By.ID, "status").text
    shot(driver, "4-invited")
    submit("logout")
    set_password(link_mailed_to(stack, "cyril@example.com"))
    log_in("cyril@example.com")
    assert not driver.find_elements(By.ID, "nav-invoices")
    assert driver.find_elements(By.ID, "nav-payments")
    for path in (
        "/invoices",
        "/invoices/2026005001",
        "/invoices/2026005001/pdf",  # the download links, typed in
        "/invoices/2026005001/isdoc",
    ):
        driver.get(f"{zone}{path}")
        assert "oprávnění" in driver.find_element(By.ID, "message").text, path
        assert "2026005001" not in driver.find_element(By.TAG_NAME, "main").text
    shot(driver, "5-invoices-refused")
    driver.get(f"{zone}/payments")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Platby"
    driver.get(f"{zone}/")
    submit("logout")

    # 3. An operator invites her into the second customer; she accepts and switches.
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "zone", "invite", "5002", "alena@example.com",
         "--rights", "invoices", "--operator", "ops"],
        env=stack.env(), cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    driver.get(link_mailed_to(stack, "alena@example.com", after=1))
    submit("accept")
    log_in("alena@example.com")
    assert driver.current_url.endswith("/customers")
    shot(driver, "6-two-customers")
    submit("act-5002")
    assert driver.find_element(By.ID, "acting-for").text == "5002"
    driver.find_element(By.ID, "nav-invoices").click()
    assert "2026005002" in driver.page_source and "2026005001" not in driver.page_source
    assert not driver.find_elements(By.ID, "nav-users")  # only invoices were granted here
    shot(driver, "7-acting-for-5002")
    driver.get(f"{zone}/customers")
    submit("act-5001")
    driver.find_element(By.ID, "nav-invoices").click()
    assert "2026005001" in driver.page_source and "2026005002" not in driver.page_source
    driver.find_element(By.ID, "lang-en").click()
    wait.until(lambda d: "Invoices" in d.find_element(By.TAG_NAME, "h1").text)
    shot(driver, "8-english")


def test_a_customer_in_dunning_sees_why_and_what_to_pay_and_downloads_the_pdf(
    stack: Stack, driver: Any, tmp_path: Path
) -> None:
    """Issue 30's Done means: the dunning explanation shown matches the operator's
    `billing dunning explain`. A customer reminded of an unpaid invoice logs in, reads why
    (the invoice, since when, how much), what comes next and when, and what to pay (the
    payment data and its QR code), and downloads the invoice's PDF, byte for byte the
    archived one."""
    import json
    from datetime import timedelta

    from selenium.webdriver.common.by import By

    from services.devstack.quiesce import advance
    from services.runtime import db
    from services.runtime.clock import set_clock

    async def reminded() -> None:
        conn = await db.connect(stack.database_url)
        try:
            await set_clock(conn, datetime(2026, 12, 1, 7, 0, tzinfo=UTC))
        finally:
            await conn.close()
        await publish(
            stack,
            _contract("5101", "Dana Malá", "dana@example.com"),
            _invoice("5101", "2026005101", "5101"),
            _documents("5101", "2026005101"),
        )
        await advance(stack.settings(), timedelta(days=18))  # 19 December: reminded

    asyncio.run(reminded())
    explained = subprocess.run(
        [sys.executable, "-m", "services.cli", "dunning", "explain", "5101", "--json"],
        env=stack.env(), cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert explained.returncode == 0, explained.stderr
    status = json.loads(explained.stdout)["status"]
    assert [s["step"] for s in status["steps_reached"]] == ["reminder-1"]
    invited = subprocess.run(
        [sys.executable, "-m", "services.cli", "zone", "invite", "5101", "dana@example.com",
         "--operator", "ops"],
        env=stack.env(), cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert invited.returncode == 0, invited.stderr

    zone = f"http://127.0.0.1:{stack.cfg.zone_port}"
    submit = submitter(driver)

    driver.get(link_mailed_to(stack, "dana@example.com"))  # the invitation, her first link
    for field in ("password", "password2"):
        driver.find_element(By.ID, field).send_keys(PASSWORD)
    submit("set-password")
    driver.get(f"{zone}/login")
    driver.find_element(By.ID, "name").send_keys("dana@example.com")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    submit("login")
    submit("lang-cs")  # the person's language from now on
    submit("nav-situation")

    # What the operator's explain says is what the page says.
    [inv] = status["invoices"]
    assert driver.find_element(By.ID, "situation-why").text == (
        "Proč: 1 faktur(a) po splatnosti od 15. 12. 2026, celkem 499,00 Kč."
    )
    assert inv["due_on"] == status["overdue_since"] == "2026-12-15"
    assert status["overdue_minor"] == inv["open_minor"] == 49900
    done = driver.find_element(By.ID, "situation-done").text
    assert "upomínka" in done and "18. 12. 2026" in done
    coming = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#situation-next li")]
    expected = [
        datetime.fromisoformat(u["at"]).astimezone(PRAGUE).strftime("%-d. %-m. %Y")
        for u in status["upcoming"]
    ]
    assert len(coming) == len(expected) and all(
        day in text for day, text in zip(expected, coming, strict=True)
    ), (coming, expected)
    pay = driver.find_element(By.ID, f"pay-{inv['invoice_number']}")
    assert pay.find_element(By.CLASS_NAME, "pay-vs").text == inv["vs"] == "5101"
    assert pay.find_element(By.CLASS_NAME, "pay-ss").text == inv["ss"] == "5101"
    assert pay.find_element(By.CLASS_NAME, "pay-amount").text == "499,00 Kč"
    assert pay.find_element(By.CLASS_NAME, "pay-account").text == status["account"]
    assert pay.find_elements(By.CSS_SELECTOR, "figure.qr svg")
    shot(driver, "9-access-reminded")

    # The invoice's PDF, downloaded by the browser, is the archived one.
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.get(f"{zone}/invoices/2026005101")
    shot(driver, "10-invoice-documents")
    driver.find_element(By.ID, "download-pdf").click()  # a download: the page stays
    target = downloads / "2026005101.pdf"
    deadline = time.monotonic() + 15
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert target.read_bytes() == _pdf("2026005101")


PRAGUE = __import__("zoneinfo").ZoneInfo("Europe/Prague")


# --- contacts30: contacts and support (issue 30 Done means) -------------------------------


def _mails_to(stack: Stack, address: str, count: int = 1) -> list[Any]:
    """The messages to ``address``, once there are ``count`` of them."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mails = stack.mail.to(address)  # type: ignore[attr-defined]
        if len(mails) >= count:
            return list(mails)
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} mails to {address}")


def _owner_logs_in(stack: Stack, driver: Any, contract: str, email: str) -> str:
    """The owner requests access, sets the password from the e-mailed link, logs in;
    the zone's address."""
    from selenium.webdriver.common.by import By

    zone = f"http://127.0.0.1:{stack.cfg.zone_port}"
    driver.get(f"{zone}/access")
    driver.find_element(By.ID, "contract").send_keys(contract)
    driver.find_element(By.ID, "email").send_keys(email)
    submitter(driver)("send")
    driver.get(link_mailed_to(stack, email))
    for field in ("password", "password2"):
        driver.find_element(By.ID, field).send_keys(PASSWORD)
    submitter(driver)("set-password")
    driver.get(f"{zone}/login")
    driver.find_element(By.ID, "name").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    submitter(driver)("login")
    return zone


def test_a_contact_edited_in_the_zone_receives_the_next_reminder(
    stack: Stack, driver: Any, tmp_path: Path
) -> None:
    """Through the whole system: the zone publishes the change, invoicing (which owns the
    contract, loaded from its file) applies and republishes it, notify sends the next
    reminder to the new address."""
    from selenium.webdriver.common.by import By

    marta = {"name": "Marta Dvořáková", "email": "marta@example.com", "owner": True}
    ucto = {"name": "Účetní", "email": "stara-ucetni@example.com", "categories": ["dunning"]}
    contract = {
        "contract": "5101",
        "customer_name": "Marta Dvořáková",
        "monthly_fee_minor": 49900,
        "currency": "CZK",
        "contacts": [marta, ucto],
    }
    contracts = tmp_path / "contracts.json"
    contracts.write_text(json.dumps([contract]), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "contracts", "load", str(contracts)],
        env=stack.env(), cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    asyncio.run(Scenario(stack).quiet())
    zone = _owner_logs_in(stack, driver, "5101", "marta@example.com")
    driver.find_element(By.ID, "nav-contacts").click()
    assert "stara-ucetni@example.com" in driver.find_element(By.ID, "contacts").text
    driver.find_element(By.LINK_TEXT, "Účetní").click()
    email = driver.find_element(By.ID, "contact-email")
    email.clear()
    email.send_keys("nova-ucetni@example.com")
    shot(driver, "contacts-1-edit")
    submitter(driver)("contact-save")
    assert driver.find_element(By.ID, "status").text
    # Applied by invoicing and published back: the list shows the new address.
    deadline = time.monotonic() + 30
    while "nova-ucetni@example.com" not in driver.find_element(By.ID, "contacts").text:
        assert time.monotonic() < deadline, "the change never came back from invoicing"
        time.sleep(0.3)
        driver.get(f"{zone}/contacts")
    shot(driver, "contacts-2-recorded")

    overdue = ev.OverdueInvoice(
        invoice_number="2026005101", vs="5101", ss="5101", due_on=date(2026, 12, 15),
        open_minor=49900, currency="CZK",
    )  # fmt: skip
    reminder = ev.ReminderRequested(
        contract="5101", request_id="5101:zone-contact", step="reminder-1",
        policy="notice-then-suspend", overdue_minor=49900, currency="CZK",
        invoices=[overdue], account="2001234561/2010", decided_at=datetime.now(UTC),
        channels=["email"],
    )  # fmt: skip
    asyncio.run(publish(stack, reminder))
    [mail] = _mails_to(stack, "nova-ucetni@example.com")
    assert "5101" in mail.body and "499,00" in mail.body
    assert stack.mail.to("stara-ucetni@example.com") == []  # type: ignore[attr-defined]


def test_a_support_request_arrives_at_the_operator_address(stack: Stack, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    asyncio.run(publish(stack, _contract("5201", "Petr Malý", "petr@example.com")))
    _owner_logs_in(stack, driver, "5201", "petr@example.com")
    assert "+420 800 123 456" in driver.find_element(By.TAG_NAME, "footer").text
    driver.find_element(By.ID, "nav-support").click()
    driver.find_element(By.ID, "support-service").send_keys("Lipová 5, Brno")
    driver.find_element(By.ID, "support-subject").send_keys("Nejde internet")
    driver.find_element(By.ID, "support-text").send_keys("Od rána nic.\nRouter bliká červeně.")
    shot(driver, "support-1-form")
    submitter(driver)("support-send")
    assert "petr@example.com" in driver.find_element(By.ID, "status").text
    shot(driver, "support-2-sent")
    support = stack.env()["BILLING_ZONE_SUPPORT_EMAIL"]
    [to_operator] = _mails_to(stack, support)
    body = to_operator.body
    assert "Petr Malý <petr@example.com>" in body and "5201" in body
    assert "Lipová 5, Brno" in body and "Router bliká červeně." in body
    assert to_operator.message["Reply-To"] == "petr@example.com"
    acks = [m for m in _mails_to(stack, "petr@example.com", 2) if "Nejde internet" in m.subject]
    assert len(acks) == 1
