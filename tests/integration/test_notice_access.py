"""The notice page and the RFC 8908 API against PostgreSQL: customers found by address
prefix (longest prefix wins, IPv4 and IPv6), the customer's address behind trusted proxies
(rightmost X-Forwarded-For), and forms that another site cannot post (Origin, SameSite
session cookie, a token keyed by the deployment's secret)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from schemas import events as ev
from schemas.envelope import envelope
from services.provisioning import domain
from services.provisioning.service import Provisioning
from services.provisioning.settings import ProvisioningSettings
from services.provisioning.web import SESSION_COOKIE, NoticePages, notice_app
from services.runtime import db
from services.runtime.clock import make_clock
from services.runtime.runs import Run
from services.runtime.settings import Topics
from services.runtime.unit import Unit
from services.runtime.worker import Runtime

NOW = datetime(2026, 12, 20, 10, tzinfo=UTC)
SECRET = "a-real-per-deployment-secret-of-40-chars!"

# Nested prefixes on purpose: the loader refuses overlaps between contracts, but the lookup
# must still pick the longest prefix whatever it is given.
CONTRACTS = {
    "5001": ev.Subscribers(ipv4_prefixes=["10.20.0.0/16"], ipv6_prefixes=["2001:db8:100::/48"]),
    "5002": ev.Subscribers(ipv4_prefixes=["10.20.30.0/24"], ipv6_prefixes=["2001:db8:100:7::/64"]),
    "5003": ev.Subscribers(ipv4=["192.0.2.7"], ipv6=["2001:db8:ffff::7"]),
}
IN_NOTICE = ("5001", "5002")


def _notice(contract: str) -> ev.NoticeRequested:
    return ev.NoticeRequested(
        contract=contract, request_id=f"{contract}:notice:1", step="notice",
        policy="notice-then-suspend", overdue_minor=49900, currency="CZK",
        invoices=[ev.OverdueInvoice(invoice_number="2026000099", vs=contract, ss="2026000099",
                                    due_on=date(2026, 12, 15), open_minor=49900, currency="CZK")],
        account="2001234561/2010", decided_at=NOW, promise_max_days=5,
    )  # fmt: skip


@asynccontextmanager
async def notice_site(url: str, tmp: Path) -> AsyncIterator[tuple[TestClient, NoticePages, Any]]:
    await db.migrate(url, "provisioning")
    secret = tmp / "notice-secret"
    secret.write_text(SECRET + "\n")
    settings = ProvisioningSettings(
        database_url=url,
        environment="production",
        notice_secret_file=secret,
        notice_trusted_proxies=["127.0.0.1", "10.99.0.0/16"],
        notice_public_url="http://notice.example/",
    )
    pool = await db.create_pool(url, "provisioning")
    rt = Runtime("provisioning", settings, Topics(), make_clock(settings), pool=pool)
    p = Provisioning()

    async def unit(fn: Callable[[Unit], Awaitable[None]]) -> None:
        async with pool.acquire() as conn, conn.transaction():
            u = Unit(conn, NOW, "/test")
            await fn(u)
            await u.flush()

    for c, subs in CONTRACTS.items():
        data = ev.ContractUpserted(
            contract=c, customer_name=c, currency="CZK", monthly_fee_minor=1, subscribers=subs
        )
        event = envelope("contract.upserted.v1", "/test", c, data, NOW)
        await unit(lambda u, e=event, d=data: p.on_contract(u, Run.of(e, d)))
    for c in IN_NOTICE:
        data = _notice(c)
        event = envelope("notice.requested.v1", "/test", c, data, NOW)
        await unit(lambda u, e=event, d=data: p.on_request(u, Run.of(e, d)))
    client = TestClient(TestServer(notice_app(rt, p)))
    await client.start_server()
    try:
        yield client, NoticePages(rt, p), pool
    finally:
        await client.close()
        await pool.close()


async def _found(pages: NoticePages, address: str) -> str | None:
    found = await pages._lookup(address)
    return None if found is None else str(found[0]["contract"])


def test_customers_are_found_by_the_longest_prefix_holding_their_address(
    database_url: str, tmp_path: Path
) -> None:
    async def go() -> None:
        async with notice_site(database_url, tmp_path) as (client, pages, _):
            expected = {
                "10.20.99.1": "5001",  # only in 5001's /16
                "10.20.30.5": "5002",  # in both: 5002's /24 is longer
                "10.20.30.0": "5002",
                "10.21.0.1": None,
                "192.0.2.7": "5003",  # a single address
                "192.0.2.8": None,
                "2001:db8:100:1::5": "5001",  # only in 5001's /48
                "2001:db8:100:7::abcd": "5002",  # in both: 5002's /64 is longer
                "2001:db8:ffff::7": "5003",
                "2001:db8:ffff::8": None,
                "::ffff:10.20.30.5": None,  # not looked up raw: the page maps it first
            }
            assert {a: await _found(pages, a) for a in expected} == expected

            # The RFC 8908 API and the page answer a customer known only by a prefix.
            for addr, captive in (("10.20.99.1", True), ("2001:db8:100:7::1", True),
                                  ("192.0.2.7", False), ("10.21.0.1", False)):  # fmt: skip
                headers = {"X-Forwarded-For": addr}
                async with client.get("/captive-portal/api", headers=headers) as resp:
                    assert (await resp.json(content_type=None))["captive"] is captive, addr
            async with client.get("/", headers={"X-Forwarded-For": "10.20.30.9"}) as resp:
                assert resp.status == 200
                assert 'class="vs">5002<' in await resp.text()
            async with client.get("/", headers={"X-Forwarded-For": "10.21.0.1"}) as resp:
                assert resp.status == 404

    asyncio.run(go())


def test_behind_trusted_proxies_the_rightmost_untrusted_forwarded_address_counts(
    database_url: str, tmp_path: Path
) -> None:
    async def go() -> None:
        async with notice_site(database_url, tmp_path) as (client, _, _):

            async def captive(forwarded: str) -> bool:
                headers = {"X-Forwarded-For": forwarded}
                async with client.get("/captive-portal/api", headers=headers) as resp:
                    return bool((await resp.json(content_type=None))["captive"])

            # 5003 (active) spoofs 5002's address (in notice) as the leftmost entry: the
            # proxy appended the real one on the right.
            assert not await captive("10.20.30.5, 192.0.2.7")
            assert await captive("192.0.2.7, 10.20.30.5")
            # a chain of trusted proxies (10.99/16) after the customer
            assert not await captive("10.20.30.5, 192.0.2.7, 10.99.0.1, 10.99.3.3")
            # two headers are one list, read from the right
            async with client.get(
                "/captive-portal/api",
                headers=[("X-Forwarded-For", "10.20.30.5"), ("X-Forwarded-For", "192.0.2.7")],
            ) as resp:
                assert (await resp.json(content_type=None))["captive"] is False
            # an entry that is no address: nobody, not the spoofed one left of it
            assert not await captive("10.20.30.5, not-an-address")

    asyncio.run(go())


def test_a_notice_cannot_be_acknowledged_from_another_site_or_with_a_forged_token(
    database_url: str, tmp_path: Path
) -> None:
    async def go() -> None:
        async with notice_site(database_url, tmp_path) as (client, _, pool):
            me = {"X-Forwarded-For": "10.20.30.5"}  # 5002
            async with client.get("/", headers=me) as resp:
                assert resp.status == 200
                page = await resp.text()
                assert resp.cookies[SESSION_COOKIE]["samesite"] == "Strict"
                assert resp.cookies[SESSION_COOKIE]["httponly"]
            token = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
            assert token is not None
            form = {"csrf": token.group(1)}
            session = client.session.cookie_jar.filter_cookies(client.make_url("/"))
            assert SESSION_COOKIE in session

            async def acks() -> int:
                async with pool.acquire() as conn:
                    return int(await conn.fetchval("SELECT count(*) FROM acknowledgements"))

            async def post(data: dict[str, str], **headers: str) -> int:
                async with client.post(
                    "/acknowledge", data=data, headers={**me, **headers}, allow_redirects=False
                ) as resp:
                    return resp.status

            # another site's page posting the customer's own valid form
            assert await post(form, Origin="http://evil.example") == 403
            assert await post(form, Origin="null") == 403
            assert await post(form, **{"Sec-Fetch-Site": "cross-site"}) == 403
            # forged tokens: the former fixed default secret, another contract's, none
            old_default = domain.form_token(
                b"change-me-in-production", "5002", "5002:notice:1", session[SESSION_COOKIE].value
            )
            assert await post({"csrf": old_default}) == 403
            assert await post({"csrf": "0" * 64}) == 403
            assert await post({}) == 403
            # the right token without the browser's session cookie (another site's request
            # carries none: SameSite=Strict)
            client.session.cookie_jar.clear()
            assert await post(form) == 403
            assert await acks() == 0

            client.session.cookie_jar.update_cookies(
                {SESSION_COOKIE: session[SESSION_COOKIE].value}, client.make_url("/")
            )
            origin = f"http://{client.host}:{client.port}"
            assert await post(form, Origin=origin, **{"Sec-Fetch-Site": "same-origin"}) == 303
            assert await acks() == 1

    asyncio.run(go())
