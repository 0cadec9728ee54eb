"""VoIP credit top-up from the zone (docs/zone.md#top-up), with the right ``topup``: the
coupons of the contract's currency (``BILLING_TOPUP_COUPONS``, read as invoicing reads
it), this month's cap and what is left, the prepaid balance, and a form that publishes
``topup.requested.v1`` (a fresh UUID per click, ``requested_by`` "customer", ``who`` the
person's id). In one transaction: the request stored, the event in the zone's outbox, the
audit line. Invoicing answers each request once; the zone keeps the answer
(services/zone/usage.py) and shows it: the invoice to pay with its QR code, or why not in
the person's language."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web
from babel.dates import format_datetime

from schemas import events as ev
from services.runtime.unit import Unit
from services.zone import domain, service
from services.zone.answers import Refused
from services.zone.contact_pages import SOURCE
from services.zone.service import Q as ZONE_Q
from services.zone.usage import Q

if TYPE_CHECKING:
    from services.zone.web import Pages, Req

LISTED = 50  # requests listed on the page, newest first


class TopupPages:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    async def page(self, req: Req, code: int = 200, **extra: Any) -> web.StreamResponse:
        from services.zone.web import LOCALES

        async with self.pages.rt.db.acquire() as conn:
            customer = await conn.fetchrow(Q.customer_of, req.contract)
            rows = await conn.fetch(Q.topups_of, req.contract, LISTED)
            answers = await conn.fetch(Q.cap_answers, req.contract)
            balance = await conn.fetchrow(Q.balance_of, req.contract)
        currency = customer["currency"] if customer else None
        tz = ZoneInfo(_zone_of(customer))
        month = f"{req.now.astimezone(tz):%Y-%m}"
        cap = domain.cap_view(
            month, [(a["month"], a["cap_minor"], a["left_minor"]) for a in answers]
        )
        money = self.pages.money
        coupons = self.pages.s.coupons_in(currency) if currency else []

        def when(at: datetime) -> str:
            return format_datetime(at, "short", tzinfo=tz, locale=LOCALES[req.lang])

        return self.pages.render(
            req,
            "topup.html",
            code,
            coupons=[
                {"code": c.code, "amount": money(c.amount_minor, c.currency, req.lang)}
                for c in coupons
            ],
            cap={
                "known": cap.known,
                "cap": money(cap.cap_minor, currency, req.lang)
                if cap.cap_minor is not None and currency
                else None,
                "left": money(cap.left_minor, currency, req.lang)
                if cap.left_minor is not None and currency
                else None,
            },
            balance=money(balance["balance_minor"], balance["currency"], req.lang)
            if balance
            else None,
            requests=[
                {
                    "request_id": r["request_id"],
                    "coupon": r["coupon"] or "",
                    "at": when(r["requested_at"] or r["answered_at"]),
                    "outcome": r["outcome"] or "waiting",
                    "text": self._outcome_text(req, r),
                }
                for r in rows
            ],
            **extra,
        )

    def _outcome_text(self, req: Req, row: Any) -> str:
        """The answer in a line: the invoice and its amount, or why not."""
        answer = row["answer"]
        if row["outcome"] == "invoiced":
            amount = self.pages.money(answer["amount_minor"], answer["currency"], req.lang)
            return req.t["topup_invoiced"].format(invoice=answer["invoice_number"], amount=amount)
        if row["outcome"] == "refused":
            return self._reason(req, answer)
        return req.t["topup_waiting"]

    def _reason(self, req: Req, answer: dict[str, Any]) -> str:
        """Why a request was refused, in the person's language (never invoicing's
        sentence, which is the operator's); over the cap: what is left."""
        code = answer["reason_code"]
        left = answer.get("left_minor")
        currency = answer.get("currency")
        key = f"topup_refused_{code}"
        if key not in req.t:  # a reason code newer than this zone: the general wording
            key = "topup_refused_cannot_invoice"
        shown = self.pages.money(left, currency, req.lang) if left is not None and currency else "-"
        return req.t[key].format(left=shown)

    async def one(self, req: Req) -> web.StreamResponse:
        """One request: its invoice with the payment data and QR code, or why not.
        Another customer's request id answers as one that does not exist."""
        request_id = req.request.match_info["request_id"]
        async with self.pages.rt.db.acquire() as conn:
            row = await conn.fetchrow(Q.topup_of, req.contract, request_id[:100])
            invoice = None
            if row is not None and row["outcome"] == "invoiced":
                number = row["answer"]["invoice_number"]
                invoice = await conn.fetchrow(ZONE_Q.invoice_of, req.contract, number)
        if row is None:
            raise Refused(404, "not_found")
        pay, paid = None, False
        if row["outcome"] == "invoiced":
            a = row["answer"]
            paid = invoice is not None and (invoice["settlement"] == "paid" or invoice["cancelled"])
            if not paid:
                pay = self.pages._to_pay(
                    req, a["account"], a["currency"], a["amount_minor"], a["vs"], a["ss"],
                    date.fromisoformat(a["due_on"]), a["invoice_number"],
                )  # fmt: skip
        return self.pages.render(
            req,
            "topup_request.html",
            r={
                "request_id": row["request_id"],
                "coupon": row["coupon"] or "",
                "outcome": row["outcome"] or "waiting",
                "text": self._outcome_text(req, row),
            },
            pay=pay,
            paid=paid,
        )

    async def request(self, req: Req) -> web.StreamResponse:
        """A coupon of the contract's currency asked for: stored, published, audited in
        one transaction; then the request's page (which shows the answer once invoicing
        has given it)."""
        assert req.acting is not None
        acting = req.acting
        posted = await req.request.post()
        code = str(posted.get("coupon", "")).strip()[:40]
        async with self.pages.rt.db.acquire() as conn:
            customer = await conn.fetchrow(Q.customer_of, req.contract)
        offered = (
            {c.code for c in self.pages.s.coupons_in(customer["currency"])} if customer else set()
        )
        if code not in offered:
            return await self.page(req, 400, problem=req.t["topup_bad_coupon"])
        request_id = str(uuid.uuid4())

        async def work(conn: asyncpg.Connection) -> None:
            event = ev.TopupRequested(
                contract=req.contract,
                request_id=request_id,
                coupon=code,
                requested_by="customer",
                who=str(acting.person_id),
                requested_at=req.now,
            )
            await conn.execute(
                Q.add_topup, req.contract, request_id, acting.person_id, code, req.now
            )
            await service.record(
                conn,
                req.now,
                acting.email,
                "topup_requested",
                req.contract,
                address=req.address,
                request_id=request_id,
                coupon=code,
            )
            unit = Unit(conn, req.now, SOURCE, self.pages.rt.topics)
            unit.emit(req.contract, event)
            await unit.flush()

        await self.pages._in_transaction(work)
        raise web.HTTPSeeOther(f"/topup/{request_id}")


def _zone_of(customer: Any) -> str:
    """The customer's time zone: of its language's country (Czech for English)."""
    from services.zone.web import TIMEZONES

    language = customer["language"] if customer else "cs"
    return TIMEZONES.get(language, TIMEZONES["cs"])
