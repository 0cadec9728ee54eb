"""The zone's top-up, traffic and calls pages (docs/zone.md#top-up, #traffic, #calls)
against a real PostgreSQL, fed the events other services publish (topup.invoiced /
refused, voip.credit_balance, traffic.hour, voip.calls_rated) through the zone's own
handlers: each page behind its right, another customer's data never shown, events
delivered twice shown once, a revised traffic hour replacing the old one, the top-up
form's token and its event in the zone's outbox."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from schemas import events as ev
from tests.integration.zone_harness import (
    Zone,
    contract,
    login,
    owner_with_login,
    post,
    running_zone,
    set_password,
    token,
)

PASSWORD = "correct horse battery"


async def _two(zone: Zone) -> tuple[Any, Any]:
    await zone.feed(
        contract("1001", "alena@example.com", "Alena"),
        contract("1002", "bohumil@example.com", "Bohumil"),
    )
    alena, bohumil = await zone.client(), await zone.client()
    await owner_with_login(zone, alena, "1001", "alena@example.com", PASSWORD)
    await owner_with_login(zone, bohumil, "1002", "bohumil@example.com", PASSWORD)
    return alena, bohumil


async def _member(zone: Zone, owner: Any, email: str, rights: list[str]) -> Any:
    resp = await post(owner, "/users/invite", {"email": email, "rights": rights})
    assert resp.status == 200
    person = await zone.client()
    await set_password(zone, person, email, PASSWORD)
    assert (await login(person, email, PASSWORD)).status == 303
    return person


async def _page(client: Any, path: str) -> tuple[int, str]:
    """The page's status and text, its no-break spaces (money, sizes) as spaces."""
    async with client.get(path, allow_redirects=False) as resp:
        text = await resp.text()
        return resp.status, text.replace("\xa0", " ").replace("\u202f", " ")


def _rows(page: str, cls: str) -> list[str]:
    return re.findall(rf'<tr class="{cls}[^"]*">(.*?)</tr>', page, re.S)


def _call(call_id: str, at: datetime, seconds: int, price: int, prepaid: bool = False) -> Any:
    return ev.RatedCall(
        call_id=call_id,
        started_at=at,
        seconds=seconds,
        caller="+420212345678",
        number="+420601234567",
        destination="Mobilní sítě CZ",
        prefix="4206",
        price_minor=price,
        currency="CZK",
        prepaid=prepaid,
    )


# --- rights ---------------------------------------------------------------------------------


async def test_each_page_needs_its_right(database_url: str) -> None:
    async with running_zone(database_url) as zone:
        alena, _ = await _two(zone)
        cyril = await _member(zone, alena, "cyril@example.com", ["invoices"])
        for path in ("/topup", "/traffic", "/calls"):
            status, page = await _page(alena, path)
            assert status == 200, (path, page)
            assert (await _page(cyril, path))[0] == 403, path
        resp = await post(cyril, "/topup", {"coupon": "CZK200"}, page="/info")
        assert resp.status == 403
        assert await zone.fetch("SELECT 1 FROM outbox") == []
        status, page = await _page(cyril, "/info")
        assert "nav-topup" not in page and "nav-calls" not in page and "nav-traffic" not in page
        dana = await _member(zone, alena, "dana@example.com", ["services", "calls", "topup"])
        for path in ("/topup", "/traffic", "/calls"):
            assert (await _page(dana, path))[0] == 200, path


# --- top-up ---------------------------------------------------------------------------------


async def test_topup_request_published_answered_and_shown_only_to_its_customer(
    database_url: str,
) -> None:
    async with running_zone(database_url) as zone:
        alena, bohumil = await _two(zone)
        status, page = await _page(alena, "/topup")
        # CZK coupons only (the default list, CZK offered: the zone's account is CZK)
        assert 'value="CZK200"' in page and 'value="CZK1000"' in page and "EUR10" not in page
        assert 'id="cap"' in page and "ještě nedobíjeli" in page
        resp = await post(alena, "/topup", {"coupon": "CZK500"})
        assert resp.status == 303
        request_id = resp.headers["Location"].removeprefix("/topup/")
        [(value,)] = await zone.fetch("SELECT value FROM outbox ORDER BY id DESC LIMIT 1")
        sent = json.loads(value)
        [(person,)] = await zone.fetch("SELECT id FROM people WHERE email = 'alena@example.com'")
        assert sent["type"] == "topup.requested.v1"
        asked = ev.TopupRequested.model_validate(sent["data"])
        assert (asked.contract, asked.request_id, asked.coupon) == ("1001", request_id, "CZK500")
        assert (asked.requested_by, asked.who) == ("customer", str(person))
        [audit] = await zone.fetch(
            "SELECT actor, contract, details FROM audit WHERE action = 'topup_requested'"
        )
        assert audit["actor"] == "alena@example.com" and audit["contract"] == "1001"
        status, page = await _page(alena, f"/topup/{request_id}")
        assert status == 200 and "se vyřizuje" in page
        invoiced = ev.TopupInvoiced(
            contract="1001",
            request_id=request_id,
            invoice_number="2026000123",
            vs="1001",
            ss="2026000123",
            amount_minor=50000,
            currency="CZK",
            coupon="CZK500",
            issued_on=date(2026, 12, 20),
            due_on=date(2027, 1, 3),
            account="2001234561/2010",
            month="2026-12",
            cap_minor=100000,
            left_minor=50000,
        )
        await zone.feed(invoiced, invoiced)  # delivered twice: one request shown
        await zone.feed(
            ev.VoipCreditBalance(
                contract="1001", balance_minor=1234, currency="CZK", change_minor=-66,
                reason="calls", at=datetime(2026, 12, 19, 8, tzinfo=UTC),
            ),
            ev.VoipCreditBalance(  # older, arriving late: not shown
                contract="1001", balance_minor=9999, currency="CZK", change_minor=100,
                reason="topup", at=datetime(2026, 12, 18, 8, tzinfo=UTC),
            ),
        )  # fmt: skip
        status, page = await _page(alena, "/topup")
        assert len(_rows(page, "topup")) == 1 and "2026000123" in page
        assert "1 000,00" in page and "zbývá 500,00" in page  # cap and left, from the answer
        assert 'id="balance"' in page and "12,34" in page and "99,99" not in page
        status, page = await _page(alena, f"/topup/{request_id}")
        spayd = page.split('class="qr-payload">')[1].split("<")[0]
        fields = dict(f.split(":", 1) for f in spayd.split("*")[2:])
        assert (fields["AM"], fields["X-VS"], fields["X-SS"]) == ("500.00", "1001", "2026000123")
        # another customer's request by URL: as one that does not exist
        theirs = await _page(bohumil, f"/topup/{request_id}")
        missing = await _page(bohumil, "/topup/no-such-request")
        assert theirs == missing and theirs[0] == 404
        assert "2026000123" not in (await _page(bohumil, "/topup"))[1]


async def test_a_refusal_is_told_in_the_persons_language_with_what_is_left(
    database_url: str,
) -> None:
    async with running_zone(database_url) as zone:
        alena, _ = await _two(zone)
        resp = await post(alena, "/topup", {"coupon": "CZK1000"})
        request_id = resp.headers["Location"].removeprefix("/topup/")
        await zone.feed(
            ev.TopupRefused(
                contract="1001",
                request_id=request_id,
                reason_code="over_cap",
                reason="this and the month's top-ups would pass the cap of 1000.00 CZK",
                coupon="CZK1000",
                amount_minor=100000,
                currency="CZK",
                month="2026-12",
                cap_minor=100000,
                left_minor=30000,
            )
        )
        page = (await _page(alena, f"/topup/{request_id}"))[1]
        assert "překročil by se měsíční limit" in page and "300,00" in page
        assert "would pass the cap" not in page  # invoicing's sentence is the operator's
        await post(alena, "/language", {"language": "en", "back": "/topup"}, page="/topup")
        page = (await _page(alena, f"/topup/{request_id}"))[1]
        assert "would pass the monthly top-up cap" in page and "left this month" in page
        assert 'id="to-pay"' not in page


async def test_topup_form_refuses_what_is_not_offered_and_needs_its_token(
    database_url: str,
) -> None:
    async with running_zone(database_url) as zone:
        alena, bohumil = await _two(zone)
        for coupon in ("EUR10", "nonsense", ""):
            resp = await post(alena, "/topup", {"coupon": coupon})
            assert resp.status == 400 and "Zvolte jednu z nabízených" in await resp.text()
        theirs = await token(bohumil, "/topup")
        for form in ({"coupon": "CZK200"}, {"coupon": "CZK200", "csrf": theirs}):
            resp = await alena.post("/topup", data=form, allow_redirects=False)
            assert resp.status == 403
        assert await zone.fetch("SELECT 1 FROM outbox") == []
        assert await zone.fetch("SELECT 1 FROM topups") == []


# --- traffic --------------------------------------------------------------------------------


def _hour(contract: str, at: datetime, revision: int, *per: tuple[str, int, int]) -> Any:
    return ev.TrafficHour(
        contract=contract,
        hour=at,
        revision=revision,
        addresses=[ev.AddressTraffic(address=a, rx_bytes=rx, tx_bytes=tx) for a, rx, tx in per],
    )


async def test_traffic_per_address_and_day_a_revision_replacing_its_hour(
    database_url: str,
) -> None:
    async with running_zone(database_url) as zone:
        alena, bohumil = await _two(zone)
        h = datetime(2026, 11, 3, 10, tzinfo=UTC)
        first = _hour("1001", h, 1, ("192.0.2.10", 2_000_000_000, 500_000_000))
        revised = _hour("1001", h, 2, ("192.0.2.10", 3_000_000_000, 600_000_000))
        await zone.feed(
            first,
            _hour("1001", h + timedelta(hours=1), 1, ("192.0.2.10", 1_000_000_000, 0),
                  ("2001:db8::10", 250_000, 1_500)),
            _hour("1002", h, 1, ("198.51.100.7", 7_777_000_000, 7_000)),
            # November 30, 23:00 UTC is December 1 in Prague: not November's
            _hour("1001", datetime(2026, 11, 30, 23, tzinfo=UTC), 1, ("192.0.2.10", 1, 1)),
        )  # fmt: skip
        await zone.feed(revised, revised, first)  # twice, and the old one late: revision 2 wins
        status, page = await _page(alena, "/traffic?month=2026-11")
        assert status == 200
        rows = _rows(page, "traffic-address")
        assert len(rows) == 2
        assert "192.0.2.10" in rows[0] and "4 GB" in rows[0].replace("\xa0", " ")
        assert "600 MB" in rows[0].replace("\xa0", " ") and "4,6 GB" in rows[0].replace("\xa0", " ")
        assert "2001:db8::10" in rows[1] and "250 kB" in rows[1].replace("\xa0", " ")
        assert "198.51.100.7" not in page
        days = _rows(page, "traffic-day")
        assert len(days) == 1 and "3. 11. 2026" in days[0]
        status, page = await _page(alena, "/traffic?from=2026-12-01&to=2026-12-01")
        assert len(_rows(page, "traffic-address")) == 1 and "1 B" in page
        status, page = await _page(bohumil, "/traffic?month=2026-11")
        assert "192.0.2.10" not in page and "198.51.100.7" in page
        [(revision,)] = await zone.fetch(
            "SELECT revision FROM traffic_hours WHERE contract = '1001' AND hour = $1", h
        )
        assert revision == 2


async def test_a_bad_period_is_a_clear_message_not_an_error(database_url: str) -> None:
    async with running_zone(database_url) as zone:
        alena, _ = await _two(zone)
        for path, says in (
            ("/traffic?month=2026-13", "2026-13"),
            ("/traffic?month=<b>x</b>", "&lt;b&gt;x&lt;/b&gt;"),
            ("/traffic?from=2026-02-30&to=2026-03-01", "2026-02-30"),
            ("/traffic?from=2026-03-01", "Den"),
            ("/traffic?from=2026-03-02&to=2026-03-01", "po jeho konci"),
            ("/traffic?from=2020-01-01&to=2026-03-01", "delší než rok"),
            ("/calls?month=x", "Měsíc"),
            ("/calls?month=2026-11&page=7", "Stránka"),
            ("/calls?page=-1", "Stránka"),
        ):
            status, page = await _page(alena, path)
            assert status == 400 and says in page, (path, status, page[-600:])


# --- calls ----------------------------------------------------------------------------------


async def test_calls_of_a_month_once_each_paged_and_only_the_customers(
    database_url: str,
) -> None:
    async with running_zone(database_url) as zone:
        alena, bohumil = await _two(zone)
        start = datetime(2026, 11, 1, 0, 30, tzinfo=UTC)  # 01:30 in Prague
        calls = [_call(f"c{i}", start + timedelta(minutes=10 * i), 61, 150) for i in range(130)]
        batches = [
            ev.CallsRated(contract="1001", import_id="f1", calls=calls[:100]),
            ev.CallsRated(contract="1001", import_id="f2", calls=calls[90:]),  # 10 again
        ]
        # October in UTC, November 1 at 00:30 in Prague: November's
        late = _call("oct", datetime(2026, 10, 31, 23, 30, tzinfo=UTC), 30, 99)
        await zone.feed(*batches, *batches)  # delivered twice
        await zone.feed(
            ev.CallsRated(contract="1001", import_id="f3", calls=[late]),
            ev.CallsRated(
                contract="1002", import_id="f4",
                calls=[_call("c0", start, 600, 5000).model_copy(update={"number": "+36301112222"})],
            ),
        )  # fmt: skip
        status, page = await _page(alena, "/calls?month=2026-11")
        assert status == 200
        summary = page.split('id="calls-summary">')[1].split("<")[0].replace("\xa0", " ")
        # 131 calls; 130 x 61 s + 30 s = 7960 s -> 133 started minutes; 130 x 1.50 + 0.99
        assert "Hovorů: 131" in summary and "minut: 133" in summary and "195,99 Kč" in summary
        assert len(_rows(page, "call")) == 100 and 'id="page-next"' in page
        times = re.findall(r'<tr class="call"><td>([^<]*)</td>', page)
        assert times[:2] == ["01.11.26 0:30", "01.11.26 1:30"], times[:2]
        assert "+36301112222" not in page
        page = (await _page(alena, "/calls?month=2026-11&page=2"))[1]
        assert len(_rows(page, "call")) == 31 and 'id="page-previous"' in page
        page = (await _page(alena, "/calls?month=2026-10"))[1]
        assert len(_rows(page, "call")) == 0 and 'id="no-calls"' in page
        [(count,)] = await zone.fetch("SELECT count(*) FROM calls WHERE contract = '1001'")
        assert count == 131
        page = (await _page(bohumil, "/calls?month=2026-11"))[1]
        assert "+36301112222" in page and "+420601234567" not in page


# --- call-price lookup ----------------------------------------------------------------------

PRICES = (
    "prefix,destination,currency,price_per_minute,increments,setup_fee,valid_from,valid_to\n"
    "420,CZ fixed,CZK,1.00,60/60,0,2026-01-01,\n"
    "4206,CZ mobile,CZK,2.00,60/1,0,2026-01-01,2026-11-30\n"
    "4206,CZ mobile,CZK,3.00,60/1,0.50,2026-12-01,\n"
)


async def test_the_call_price_lookup_quotes_from_the_price_list(
    database_url: str, tmp_path: Any
) -> None:
    """A number in, the destination, price per minute and a call's price out, from the
    operator's price list as voip rates by (the longest prefix valid today, increments and
    setup fee); bad input said on the page, never a 500; behind the right "calls"; without a
    price list the zone says it offers none."""
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES)
    async with running_zone(database_url, voip_price_list=prices) as zone:
        alena, _ = await _two(zone)
        status, page = await _page(alena, "/calls")
        assert status == 200 and 'href="/calls/price"' in page
        # 90 s to a mobile: 60 s then per second = 90 s at 3.00/min + 0.50 = 5.00
        status, page = await _page(alena, "/calls/price?number=%2B420+601+123+456&seconds=90")
        assert status == 200, page
        quote = page.split('id="price-quote">')[1].split("</p>")[0]
        assert "+420601123456" in quote and "CZ mobile" in quote, quote
        assert "3,00 Kč" in quote and "0,50 Kč" in quote and "5,00 Kč" in quote, quote
        # a national fixed number, 61 s in whole minutes: 2 x 1.00
        page = (await _page(alena, "/calls/price?number=212345678&seconds=61"))[1]
        assert "CZ fixed" in page and "2,00 Kč" in page.split('id="price-quote">')[1]
        for query, problem in (
            ("number=abc&seconds=60", "To není telefonní číslo"),
            ("number=%2B999&seconds=60", "nemáme v ceníku cenu"),
            ("number=601123456&seconds=-5", "celý počet sekund"),
            ("number=601123456&seconds=999999", "celý počet sekund"),
        ):
            status, page = await _page(alena, "/calls/price?" + query)
            assert status == 400 and problem in page, (query, page)
            assert 'id="price-quote"' not in page
        cyril = await _member(zone, alena, "cyril@example.com", ["invoices"])
        assert (await _page(cyril, "/calls/price?number=601123456"))[0] == 403
    async with running_zone(database_url) as zone:
        alena = await zone.client()
        await login(alena, "alena@example.com", PASSWORD)
        status, page = await _page(alena, "/calls/price?number=601123456")
        assert status == 200 and 'id="price-not-offered"' in page
