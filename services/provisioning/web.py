"""HTTP side of provisioning: the notice page customers see (by source address, never by
an id in the URL), the RFC 8908 captive-portal API, and the access snapshot for gear.

The page finds the customer by the longest of the contracts' addresses and prefixes that
holds the request's address (``access_networks``); behind trusted proxies, by the rightmost
X-Forwarded-For address that is not one of them (services/runtime/networks.py). Its forms
(acknowledge, promise) carry a token bound to the contract, the notice and a SameSite
session cookie, keyed by the deployment's notice secret; a post from another site's page
is refused by its Origin before the token is looked at.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import date
from pathlib import Path
from typing import Any

from aiohttp import web
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.provisioning import domain
from services.provisioning.service import Provisioning, Q
from services.provisioning.settings import ProvisioningSettings, notice_key
from services.runtime import auth, logs, networks, payqr
from services.runtime.unit import Unit
from services.runtime.worker import Runtime

log = logs.get(__name__)

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(["html"])
)

TEXTS: dict[str, dict[str, str]] = {
    "cs": {
        "title": "Upozornění na neuhrazenou platbu",
        "intro": "Evidujeme neuhrazené faktury. Prosíme o úhradu:",
        "account": "Účet",
        "invoice": "Faktura",
        "due": "splatnost",
        "confirm": "Beru na vědomí",
        "no_notice_title": "Žádné upozornění",
        "thanks": "Děkujeme, potvrzení jsme zaznamenali.",
        "unknown": "Tuto adresu neznáme.",
        "qr": "Naskenujte v bankovní aplikaci (QR Platba)",
        "promise": "Zaplatím do",
        "promise_note": "Pozastavení můžete jednou odložit, nejvýše o {days} dní.",
        "promised": "Děkujeme. Pozastavení odkládáme o {days} dní.",
    },
    "en": {
        "title": "Payment overdue",
        "intro": "Some of your invoices are unpaid. Please pay:",
        "account": "Account",
        "invoice": "Invoice",
        "due": "due",
        "confirm": "I understand",
        "no_notice_title": "No notice",
        "thanks": "Thank you, your confirmation is recorded.",
        "unknown": "This address is not known to us.",
        "qr": "Scan with your banking app to pay",
        "promise": "I will pay by",
        "promise_note": "You may postpone the suspension once, by up to {days} days.",
        "promised": "Thank you. The suspension is postponed by {days} days.",
    },
    "sk": {
        "title": "Upozornenie na neuhradenú platbu",
        "intro": "Evidujeme neuhradené faktúry. Prosíme o úhradu:",
        "account": "Účet",
        "invoice": "Faktúra",
        "due": "splatnosť",
        "confirm": "Beriem na vedomie",
        "no_notice_title": "Žiadne upozornenie",
        "thanks": "Ďakujeme, potvrdenie sme zaznamenali.",
        "unknown": "Túto adresu nepoznáme.",
        "qr": "Naskenujte v bankovej aplikácii (PAY by square)",
        "promise": "Zaplatím do",
        "promise_note": "Pozastavenie môžete raz odložiť, najviac o {days} dní.",
        "promised": "Ďakujeme. Pozastavenie odkladáme o {days} dní.",
    },
    "hu": {
        "title": "Fizetési értesítés",
        "intro": "Nyilvántartásunk szerint kifizetetlen számlái vannak. Kérjük, fizessen:",
        "account": "Számlaszám",
        "invoice": "Számla",
        "due": "határidő",
        "confirm": "Tudomásul vettem",
        "no_notice_title": "Nincs értesítés",
        "thanks": "Köszönjük, a jóváhagyást rögzítettük.",
        "unknown": "Ezt a címet nem ismerjük.",
        "qr": "Olvassa be a banki alkalmazással",
        "promise": "Fizetek eddig:",
        "promise_note": "A felfüggesztést egyszer, legfeljebb {days} nappal halaszthatja el.",
        "promised": "Köszönjük. A felfüggesztést {days} nappal elhalasztjuk.",
    },
}
LOCALES = {"cs": "cs_CZ", "sk": "sk_SK", "hu": "hu_HU", "en": "en_GB"}
SESSION_COOKIE = "notice_session"


def money(minor: int, currency: str, lang: str) -> str:
    return format_currency(minor / 100, currency, locale=LOCALES.get(lang, "en_GB"))


class NoticePages:
    def __init__(self, rt: Runtime[ProvisioningSettings], provisioning: Provisioning) -> None:
        self.rt = rt
        self.provisioning = provisioning
        self.key = notice_key(rt.settings)
        self.trusted = networks.trusted_networks(rt.settings.notice_trusted_proxies)
        public = rt.settings.notice_public_url.partition("://")[2].partition("/")[0]
        self.public_host = public.lower()

    def address(self, request: web.Request) -> str | None:
        found = networks.client_address(
            request.remote, request.headers.getall("X-Forwarded-For", []), self.trusted
        )
        return None if found is None else str(found)

    async def _lookup(self, address: str | None) -> tuple[Any, Any] | None:
        if address is None:
            return None
        async with self.rt.db.acquire() as conn:
            contract = await conn.fetchval(Q.contract_by_address, address)
            if contract is None:
                return None
            access = await conn.fetchrow(Q.access_summary, contract)
            notice = await conn.fetchrow(Q.get_notice, contract)
            return access, notice

    async def page(self, request: web.Request) -> web.Response:
        address = self.address(request)
        found = await self._lookup(address)
        if found is None:
            return self._render("en", None, TEXTS["en"]["unknown"], status_code=404)
        access, notice = found
        lang = access["language"] if access["language"] in TEXTS else "en"
        t = TEXTS[lang]
        status = t["thanks"] if request.query.get("done") else ""
        if notice is None:
            return self._render(lang, None, status or access["state"])
        data = dict(notice["request"])
        promised = notice["promised_days"]
        if promised:
            status = t["promised"].format(days=promised)
        data["invoices"] = [
            {
                **i,
                "amount": money(i["open_minor"], i["currency"], lang),
                "due": format_date(
                    date.fromisoformat(str(i["due_on"])[:10]), "medium", locale=LOCALES[lang]
                ),
            }
            for i in data["invoices"]
        ]
        session = request.cookies.get(SESSION_COOKIE) or secrets.token_urlsafe(32)
        csrf = domain.form_token(self.key, access["contract"], notice["request_id"], session)
        owed = money(data["overdue_minor"], data["currency"], lang)
        max_days = int(data.get("promise_max_days") or 0)
        can_promise = max_days > 0 and not promised and access["state"] != "suspended"
        response = self._render(
            lang,
            data,
            status,
            csrf=csrf,
            owed=owed,
            qr=self._qr(data),
            confirm=access["state"] == "notice",
            promise_days=list(range(1, max_days + 1)) if can_promise else [],
            promise_note=t["promise_note"].format(days=max_days),
        )
        if request.cookies.get(SESSION_COOKIE) != session:
            response.set_cookie(
                SESSION_COOKIE,
                session,
                httponly=True,
                samesite="Strict",
                secure=request.secure,
                path="/",
            )
        return response

    async def promise(self, request: web.Request) -> web.Response:
        """The customer postpones the suspension (within the policy; dunning decides)."""
        address, form, access, notice = await self._form(request, need_notice_state=False)
        max_days = int(dict(notice["request"]).get("promise_max_days") or 0)
        try:
            days = int(str(form.get("days", "")))
        except ValueError:
            raise web.HTTPBadRequest(text="days: expected a number") from None
        if not 1 <= days <= max_days:
            raise web.HTTPBadRequest(text=f"days: expected 1 to {max_days}")
        user_agent = request.headers.get("User-Agent")
        await self._in_unit(
            lambda u: self.provisioning.promise(
                u, access["contract"], notice["request_id"], days, address, user_agent
            )
        )
        raise web.HTTPSeeOther("/")

    async def _in_unit(self, fn: Any) -> None:
        async with self.rt.db.acquire() as conn:
            await self.rt.clock.refresh(conn)
            async with conn.transaction():
                unit = Unit(conn, self.rt.clock.now(), "/services/provisioning")
                await fn(unit)
                await unit.flush()

    def _qr(self, notice: dict[str, Any]) -> str | None:
        """SPAYD for CZK, PAY by square for EUR; other currencies get the details only."""
        invoices = sorted(notice["invoices"], key=lambda i: str(i["due_on"]))
        if not invoices:
            return None
        due = date.fromisoformat(str(invoices[0]["due_on"])[:10])
        vs = invoices[0]["vs"]
        ss = invoices[0]["ss"] if len(invoices) == 1 else None
        args = (notice["account"], notice["overdue_minor"], notice["currency"], vs, ss, due)
        company = self.rt.settings.company_name
        try:
            if notice["currency"] == "CZK":
                return payqr.svg(payqr.spayd(*args, recipient=company))
            if notice["currency"] == "EUR":
                return payqr.svg(payqr.pay_by_square(*args, beneficiary=company))
        except ValueError as exc:  # an account we cannot express as an IBAN
            log.warning("no payment QR code", error=str(exc))
        return None

    def _render(
        self,
        lang: str,
        notice: dict[str, Any] | None,
        status: str,
        status_code: int = 200,
        **extra: Any,
    ) -> web.Response:
        html = _env.get_template("notice.html").render(
            lang=lang, t=TEXTS.get(lang, TEXTS["en"]), notice=notice, status=status, **extra
        )
        return web.Response(
            text=html,
            content_type="text/html",
            status=status_code,
            headers={"Cache-Control": "no-store"},
        )

    async def _form(self, request: web.Request, need_notice_state: bool) -> tuple[Any, ...]:
        """The posted form of a customer's own notice: refused when it comes from another
        site's page, or its token does not fit this contract, notice and browser session."""
        hosts = frozenset({request.host.lower(), self.public_host})
        origin, fetch_site = request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site")
        if domain.cross_site(origin, fetch_site, hosts):
            log.warning("cross-site notice form refused", origin=origin, fetch_site=fetch_site)
            raise web.HTTPForbidden(text="this form must be sent from the notice page itself")
        address = self.address(request)
        form = await request.post()
        found = await self._lookup(address)
        if found is None:
            raise web.HTTPNotFound(text="unknown address")
        access, notice = found
        if notice is None or (need_notice_state and access["state"] != "notice"):
            raise web.HTTPSeeOther("/?done=1")
        session = request.cookies.get(SESSION_COOKIE, "")
        expected = domain.form_token(self.key, access["contract"], notice["request_id"], session)
        if not session or not hmac.compare_digest(str(form.get("csrf", "")), expected):
            raise web.HTTPForbidden(text="invalid or expired form, reload the page")
        return address, form, access, notice

    async def acknowledge(self, request: web.Request) -> web.Response:
        address, _, access, notice = await self._form(request, need_notice_state=True)
        user_agent = request.headers.get("User-Agent")
        await self._in_unit(
            lambda u: self.provisioning.acknowledge(
                u, access["contract"], notice["request_id"], address, user_agent
            )
        )
        raise web.HTTPSeeOther("/?done=1")

    async def captive_portal(self, request: web.Request) -> web.Response:
        """RFC 8908: is this client captive, and where is the page to see."""
        found = await self._lookup(self.address(request))
        captive = found is not None and found[0]["state"] in ("notice", "suspended")
        body: dict[str, Any] = {"captive": captive}
        if captive:
            body["user-portal-url"] = self.rt.settings.notice_public_url
        return web.json_response(body, content_type="application/captive+json")


async def snapshot(rt: Runtime, request: web.Request) -> web.Response:
    """GET /access?state=suspended&after=<contract>&limit=500: the desired state, paged, so
    gear that missed events can rebuild."""
    state = request.query.get("state")
    if state is not None and state not in ("active", "notice", "restricted", "suspended"):
        raise web.HTTPBadRequest(text=f"unknown state {state!r}")
    try:
        limit = min(int(request.query.get("limit", "500")), 5000)
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be a number") from None
    after = request.query.get("after", "")
    async with rt.db.acquire() as conn:
        rows = await conn.fetch(Q.snapshot, state, after, limit)
    items = [
        {
            "contract": r["contract"],
            "subscribers": r["subscribers"],
            "state": r["state"],
            "reason": r["reason"],
            "version": r["version"],
            "effective_at": r["effective_at"].isoformat(),
        }
        for r in rows
    ]
    nxt = items[-1]["contract"] if len(items) == limit else None
    return web.json_response({"items": items, "next_after": nxt})


def check_settings(settings: ProvisioningSettings) -> None:
    """What the notice page cannot start without: its secret, readable trusted proxies."""
    notice_key(settings)
    try:
        networks.trusted_networks(settings.notice_trusted_proxies)
    except networks.NetworkError as exc:
        raise auth.ConfigError(str(exc)) from None


def notice_app(rt: Runtime[ProvisioningSettings], provisioning: Provisioning) -> web.Application:
    """The customers' side: authorised by the request's address, not an operator token."""
    pages = NoticePages(rt, provisioning)
    app = web.Application()
    app.router.add_get("/", pages.page)
    app.router.add_post("/acknowledge", pages.acknowledge)
    app.router.add_post("/promise", pages.promise)
    app.router.add_get("/captive-portal/api", pages.captive_portal)
    return app


async def serve_notice(
    rt: Runtime[ProvisioningSettings], provisioning: Provisioning
) -> web.AppRunner:
    app = notice_app(rt, provisioning)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, rt.settings.notice_host, rt.settings.notice_port).start()
    return runner
