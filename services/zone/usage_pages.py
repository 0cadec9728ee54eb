"""Traffic and calls in the zone (docs/zone.md#traffic, #calls): a period's traffic per
address and per day (right ``services``: "see services and usage"), a month's calls with
their count, minutes and total (right ``calls``). Read from the zone's own tables
(services/zone/usage.py); the period and page come from the query string, checked by
``domain.pick_period`` / ``page_number``: a bad one is a page saying what was wrong (400),
never a 500. Days and times are the customer's (its country's time zone)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiohttp import web
from babel.dates import format_datetime
from babel.numbers import format_currency as units
from babel.numbers import format_decimal

from services.zone import domain
from services.zone.answers import Refused
from services.zone.topup_pages import _zone_of
from services.zone.usage import Q

if TYPE_CHECKING:
    from services.zone.web import Pages, Req


class UsagePages:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        # read once at start: a bad list stops the zone at start, not a customer's lookup
        self.prices = pages.s.price_list()

    async def price(self, req: Req) -> web.StreamResponse:
        """What a call to a number costs, from the operator's price list (right ``calls``):
        the destination, its price per minute, increments and setup fee, and the price of a
        call of the length asked (60 s unless said). Bad input is said on the page."""
        q = req.request.query
        number, length = q.get("number", "").strip(), q.get("seconds", "60").strip()
        context: dict[str, Any] = {"number": number[:40], "seconds": length[:6], "offered": True}
        if self.prices is None:
            context["offered"] = False
            return self.pages.render(req, "price.html", **context)
        if not number:
            return self.pages.render(req, "price.html", **context)
        async with self.pages.rt.db.acquire() as conn:
            customer = await conn.fetchrow(Q.customer_of, req.contract)
        today = req.now.astimezone(ZoneInfo(_zone_of(customer))).date()
        problem, quote = domain.price_quote(
            self.prices, number, length, today, self.pages.s.voip_country_prefix
        )
        if quote is None:
            return self.pages.render(req, "price.html", 400, problem=problem, **context)
        from services.zone.web import LOCALES

        rate, money, lang = quote.rate, self.pages.money, req.lang
        context["quote"] = {
            "number": "+" + quote.number,
            "destination": rate.destination,
            "per_minute": units(rate.per_minute, rate.currency, locale=LOCALES[lang]),
            "setup": units(rate.setup, rate.currency, locale=LOCALES[lang]),
            "increments": rate.increments,
            "seconds": quote.seconds,
            "price": money(quote.price_minor, rate.currency, lang),
        }
        return self.pages.render(req, "price.html", **context)

    def _period(self, req: Req, tz: ZoneInfo, months_only: bool) -> domain.Period:
        q = req.request.query
        today = req.now.astimezone(tz).date()
        try:
            if months_only:
                return domain.pick_period(q.get("month"), None, None, today)
            return domain.pick_period(q.get("month"), q.get("from"), q.get("to"), today)
        except domain.PeriodProblem as exc:
            raise Refused(400, f"period_{exc.key}", value=exc.value) from None

    def _bytes(self, count: int, lang: str) -> str:
        from services.zone.web import LOCALES

        value, unit = domain.byte_size(count)
        return f"{format_decimal(value, locale=LOCALES[lang])} {unit}"

    def _traffic(self, req: Req, row: Any) -> dict[str, str]:
        rx, tx = row["rx"], row["tx"]
        return {
            "download": self._bytes(rx, req.lang),
            "upload": self._bytes(tx, req.lang),
            "total": self._bytes(rx + tx, req.lang),
        }

    async def traffic(self, req: Req) -> web.StreamResponse:
        async with self.pages.rt.db.acquire() as conn:
            customer = await conn.fetchrow(Q.customer_of, req.contract)
            tz_name = _zone_of(customer)
            tz = ZoneInfo(tz_name)
            period = self._period(req, tz, months_only=False)
            start, end = _bounds(period, tz)
            addresses = await conn.fetch(Q.traffic_per_address, req.contract, start, end)
            days = await conn.fetch(Q.traffic_per_day, req.contract, start, end, tz_name)
        lang = req.lang
        return self.pages.render(
            req,
            "traffic.html",
            period=_shown(self.pages, period, lang),
            addresses=[{"address": r["address"], **self._traffic(req, r)} for r in addresses],
            days=[{"day": self.pages.day(r["day"], lang), **self._traffic(req, r)} for r in days],
        )

    async def calls(self, req: Req) -> web.StreamResponse:
        from services.zone.web import LOCALES

        async with self.pages.rt.db.acquire() as conn:
            customer = await conn.fetchrow(Q.customer_of, req.contract)
            tz = ZoneInfo(_zone_of(customer))
            period = self._period(req, tz, months_only=True)
            start, end = _bounds(period, tz)
            sums = await conn.fetch(Q.calls_summary, req.contract, start, end)
            count = sum(s["calls"] for s in sums)
            try:
                page = domain.page_number(req.request.query.get("page"), count)
            except domain.PeriodProblem as exc:
                raise Refused(400, f"period_{exc.key}", value=exc.value) from None
            per = domain.CALLS_PER_PAGE
            rows = await conn.fetch(Q.calls_page, req.contract, start, end, per, (page - 1) * per)
            balance = await conn.fetchrow(Q.balance_of, req.contract)
        lang, money = req.lang, self.pages.money
        seconds = sum(s["seconds"] for s in sums)
        pages = max(1, -(-count // per))
        return self.pages.render(
            req,
            "calls.html",
            period=_shown(self.pages, period, lang),
            calls=[
                {
                    "at": format_datetime(
                        r["started_at"], "short", tzinfo=tz, locale=LOCALES[lang]
                    ),
                    "number": r["number"],
                    "destination": r["destination"],
                    "duration": domain.duration(r["seconds"]),
                    "price": money(r["price_minor"], r["currency"], lang),
                    "prepaid": r["prepaid"],
                }
                for r in rows
            ],
            count=count,
            minutes=domain.minutes(seconds),
            totals=[money(s["price_minor"], s["currency"], lang) for s in sums],
            page=page,
            pages=pages,
            balance=money(balance["balance_minor"], balance["currency"], lang) if balance else None,
        )


def _bounds(period: domain.Period, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The period's first moment and the moment after it, in the customer's time zone."""
    start = datetime.combine(period.first, time(0), tzinfo=tz)
    end = datetime.combine(period.last + timedelta(days=1), time(0), tzinfo=tz)
    return start, end


def _shown(pages: Pages, period: domain.Period, lang: str) -> dict[str, Any]:
    """The period as the page's picker shows it, and the months before and after."""
    before = period.first - timedelta(days=1)
    after = period.last + timedelta(days=1)
    return {
        "month": period.month,
        "first": period.first.isoformat(),
        "last": period.last.isoformat(),
        "from": pages.day(period.first, lang),
        "to": pages.day(period.last, lang),
        "previous": f"{before:%Y-%m}",
        "next": f"{after:%Y-%m}" if period.month else None,
    }
