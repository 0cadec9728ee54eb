"""The notice page in a real browser (Debian's chromium, driven by Selenium through
chromedriver): a customer in notice sees what is owed, how to pay and the QR code,
confirms, and gets through. Screenshots go to artifacts/."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from schemas.envelope import envelope
from schemas.events import ContractUpserted, NoticeRequested, OverdueInvoice, Subscribers
from services.devstack.demo import Scenario
from services.devstack.stack import Stack
from services.runtime.settings import Topics

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"


async def put_in_notice(stack: Stack) -> None:
    """The browser connects from 127.0.0.1: a contract whose subscriber address that is,
    then the notice dunning would request."""
    now = datetime.now(UTC)
    contract = ContractUpserted(
        contract="4001", customer_name="Jana Prohlížečová", language="cs", currency="CZK",
        monthly_fee_minor=49900, subscribers=Subscribers(ipv4=["127.0.0.1"]),
    )  # fmt: skip
    notice = NoticeRequested(
        contract="4001", request_id="4001:notice:2026000099", step="notice",
        policy="notice-then-suspend", overdue_minor=49900, currency="CZK",
        invoices=[OverdueInvoice(invoice_number="2026000099", vs="4001", ss="2026000099",
                                 due_on=date(2026, 12, 15), open_minor=49900, currency="CZK")],
        account="2001234561/2010", decided_at=now, promise_max_days=5,
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        topics = Topics()
        # In order, as in the system: the contract first, then (on another topic) the
        # notice dunning decided.
        for topic, type_, data in (
            (topics.contracts, "contract.upserted.v1", contract),
            (topics.dunning, "notice.requested.v1", notice),
        ):
            event = envelope(type_, "/test", "4001", data, now)
            await producer.send_and_wait(topic, event.model_dump_json().encode(), key=b"4001")
            await Scenario(stack).quiet()
    finally:
        await producer.stop()


async def access_of(stack: Stack, contract: str) -> dict:  # type: ignore[type-arg]
    url = f"http://127.0.0.1:{stack.metrics_port('provisioning')}/access"
    async with (
        aiohttp.ClientSession(headers=stack.operator_headers()) as http,
        http.get(url) as resp,
    ):
        items = (await resp.json())["items"]
    return next(i for i in items if i["contract"] == contract)


def test_customer_in_notice_sees_pays_confirms_and_gets_through(stack: Stack, driver) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    asyncio.run(put_in_notice(stack))
    assert asyncio.run(access_of(stack, "4001"))["state"] == "notice"
    ARTIFACTS.mkdir(exist_ok=True)

    driver.get(f"http://127.0.0.1:{stack.cfg.notice_port}/")
    assert driver.find_element(By.ID, "owed").text == "499,00 Kč"
    assert driver.find_element(By.ID, "account").text == "2001234561/2010"
    assert driver.find_element(By.CLASS_NAME, "vs").text == "4001"
    assert driver.find_element(By.CLASS_NAME, "ss").text == "2026000099"
    qr = driver.find_element(By.CSS_SELECTOR, "#qr svg")
    assert qr.size["width"] >= 100 and qr.size["height"] >= 100  # rendered, not just present
    assert driver.find_element(By.ID, "promise-days")  # the policy allows a promise
    driver.save_screenshot(str(ARTIFACTS / "notice-page.png"))

    driver.find_element(By.ID, "confirm").click()
    # POST, then 303 to the page again: wait for the new page, not the old one's body.
    WebDriverWait(driver, 10).until(lambda d: "Děkujeme" in d.page_source)
    driver.save_screenshot(str(ARTIFACTS / "notice-confirmed.png"))
    asyncio.run(Scenario(stack).quiet())
    state = asyncio.run(access_of(stack, "4001"))
    assert (state["state"], state["reason"]) == ("active", "notice acknowledged")

    # The evidence: time, address and the browser's user agent.
    import asyncpg

    async def evidence() -> list[dict]:  # type: ignore[type-arg]
        conn = await asyncpg.connect(stack.database_url)
        try:
            rows = await conn.fetch("SELECT * FROM provisioning.acknowledgements")
            return [dict(r) for r in rows]
        finally:
            await conn.close()

    [ack] = asyncio.run(evidence())
    assert ack["address"] == "127.0.0.1" and "Chrome" in (ack["user_agent"] or "")
    (ARTIFACTS / "notice-evidence.json").write_text(json.dumps(ack, default=str, indent=2))

    # Still unpaid: the customer comes back and promises to pay within 3 more days.
    from selenium.webdriver.support.ui import Select

    driver.get(f"http://127.0.0.1:{stack.cfg.notice_port}/")
    Select(driver.find_element(By.ID, "promise-days")).select_by_value("3")
    driver.find_element(By.ID, "promise-submit").click()
    WebDriverWait(driver, 10).until(lambda d: "odkládáme o 3 dní" in d.page_source)
    assert not driver.find_elements(By.ID, "promise-days")  # once per notice
    driver.save_screenshot(str(ARTIFACTS / "notice-promised.png"))
