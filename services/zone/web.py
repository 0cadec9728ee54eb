"""The customer zone's pages (aiohttp + Jinja2), secure by construction:

- Every route is declared in ``Pages.routes`` with what it needs: nothing (``PUBLIC``), a
  login (``LOGGED_IN``), a customer acted for (``MEMBER``), or one of the membership's
  rights (``domain.RIGHTS``). The app is built from that table alone, and one middleware
  checks the need before any handler runs, from the session and membership as they are in
  the database at that request (``Q.acting``): a right removed a moment ago is gone.
- Every read and write of a customer's data takes the customer from that membership,
  never from the URL: ``WHERE contract = <acted for> AND id = <from the URL>``. Another
  customer's invoice, payment or person answers as one that does not exist (404).
- Every POST, on any route, must come from the zone's own pages (``Origin`` /
  ``Sec-Fetch-Site``) and carry the form token bound to the browser's session cookie;
  the middleware refuses it before the handler runs.
- The session cookie is HttpOnly, SameSite=Lax, Secure (unless configured off for plain
  http in development); logging in always issues a new session id (no fixation).
- Any error is a page in the person's language; no traceback ever reaches a browser.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from prometheus_client import Counter

from schemas import contacts as contact_rules
from services.runtime import logs, networks, payqr
from services.runtime.worker import Runtime
from services.zone import domain, service
from services.zone.answers import TEMPLATES, WORDING, Refused
from services.zone.answers import number as _number
from services.zone.contact_pages import ContactPages
from services.zone.service import Acting, Link, Mail, Q
from services.zone.settings import ZoneSettings, zone_key
from services.zone.support_pages import SupportPages
from services.zone.topup_pages import TopupPages
from services.zone.usage_pages import UsagePages

log = logs.get(__name__)
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
LOCALES = {"cs": "cs_CZ", "sk": "sk_SK", "hu": "hu_HU", "en": "en_GB"}
SESSION_COOKIE = "zone_session"
LANGUAGE_COOKIE = "zone_language"
SAFE = frozenset({"GET", "HEAD"})

PUBLIC = "public"
LOGGED_IN = "logged-in"
MEMBER = "member"
NEEDS = frozenset({PUBLIC, LOGGED_IN, MEMBER, *domain.RIGHTS})

LOGINS = Counter("billing_zone_logins_total", "Zone logins by outcome", ["outcome"])
REFUSED = Counter("billing_zone_refused_total", "Zone requests refused, by why", ["why"])


@dataclass
class Req:
    """One request as the handlers see it: who asks (read anew), in which language, with
    which session cookie, at what time, from where."""

    request: web.Request
    acting: Acting | None
    session: str
    lang: str
    now: datetime
    address: str
    new_cookie: bool

    @property
    def t(self) -> dict[str, str]:
        return WORDING[self.lang]

    @property
    def member(self) -> domain.Membership:
        assert self.acting is not None and self.acting.membership is not None
        return self.acting.membership

    @property
    def contract(self) -> str:
        return self.member.contract


REQUEST = web.RequestKey("zone_request", Req)
Handler = Callable[[Req], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    needs: str  # PUBLIC, LOGGED_IN, MEMBER or a right


class Pages:
    def __init__(self, rt: Runtime[ZoneSettings]) -> None:
        self.rt = rt
        self.s = rt.settings
        self.key = zone_key(rt.settings)
        self.trusted = networks.trusted_networks(rt.settings.zone_trusted_proxies)
        public = rt.settings.zone_public_url.rstrip("/")
        self.public_url = public
        self.public_origin = "/".join(public.split("/")[:3]).lower()
        self.throttle = service.throttle_of(rt.settings)
        self.wake_sender: Callable[[], None] = lambda: None
        self.contacts = ContactPages(self)
        self.support = SupportPages(self)
        self.topup = TopupPages(self)
        self.usage = UsagePages(self)
        # The help channels the operator configured: the support page and every footer.
        self.help = {
            "phone": rt.settings.zone_help_phone,
            "email": rt.settings.zone_help_email,
            "hours": rt.settings.zone_help_hours,
        }

    # --- the table every route is in ------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/", self.home, PUBLIC),
            Route("GET", "/login", self.login_page, PUBLIC),
            Route("POST", "/login", self.login, PUBLIC),
            Route("POST", "/logout", self.logout, LOGGED_IN),
            Route("GET", "/access", self.access_page, PUBLIC),
            Route("POST", "/access", self.request_access, PUBLIC),
            Route("GET", "/reset", self.reset_page, PUBLIC),
            Route("POST", "/reset", self.request_reset, PUBLIC),
            Route("GET", "/link/{token}", self.link_page, PUBLIC),
            Route("POST", "/link/{token}", self.use_link, PUBLIC),
            Route("POST", "/language", self.choose_language, PUBLIC),
            Route("GET", "/password", self.password_page, LOGGED_IN),
            Route("POST", "/password", self.change_password, LOGGED_IN),
            Route("GET", "/customers", self.customers, LOGGED_IN),
            Route("POST", "/customers", self.switch, LOGGED_IN),
            Route("GET", "/info", self.info, MEMBER),
            Route("GET", "/invoices", self.invoices, "invoices"),
            Route("GET", "/invoices/{number}", self.invoice, "invoices"),
            Route("GET", "/payments", self.payments, "payments"),
            Route("GET", "/payments/{id}", self.payment, "payments"),
            Route("GET", "/users", self.users, "users"),
            Route("POST", "/users/invite", self.invite, "users"),
            Route("GET", "/users/{person}", self.user, "users"),
            Route("POST", "/users/{person}/rights", self.set_rights, "users"),
            Route("POST", "/users/{person}/remove", self.remove_user, "users"),
            Route("GET", "/services", self.services, "services"),
            Route("GET", "/situation", self.situation, "invoices"),
            Route("GET", "/invoices/{number}/{file}", self.document, "invoices"),
            # contacts30: contacts, the customer's own details, support requests
            Route("GET", "/contacts", self.contacts.list, "users"),
            Route("POST", "/contacts/add", self.contacts.add, "users"),
            Route("GET", "/contacts/{position}", self.contacts.one, "users"),
            Route("POST", "/contacts/{position}", self.contacts.change, "users"),
            Route("POST", "/contacts/{position}/remove", self.contacts.remove, "users"),
            Route("POST", "/info/details", self.contacts.own_details, "contacts"),
            Route("GET", "/support", self.support.page, "support"),
            Route("POST", "/support", self.support.send, "support"),
            # zone31: VoIP credit top-up, traffic ("services": services and usage), calls
            Route("GET", "/topup", self.topup.page, "topup"),
            Route("POST", "/topup", self.topup.request, "topup"),
            Route("GET", "/topup/{request_id}", self.topup.one, "topup"),
            Route("GET", "/traffic", self.usage.traffic, "services"),
            Route("GET", "/calls", self.usage.calls, "calls"),
            Route("GET", "/calls/price", self.usage.price, "calls"),
        ]

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard], client_max_size=64 * 1024)
        for route in self.routes():
            if route.needs not in NEEDS:
                raise ValueError(f"route {route.method} {route.path}: unknown need {route.needs}")
            app.router.add_route(route.method, route.path, _bound(route))
        return app

    # --- the one place requests are checked ----------------------------------------------

    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        lang = domain.pick_language(
            request.cookies.get(LANGUAGE_COOKIE), request.headers.get("Accept-Language")
        )
        try:
            response = await self._guarded(request, handler, lang)
        except Refused as exc:
            req = request.get(REQUEST)
            response = self.message(req, exc.key, exc.status, lang=lang, **exc.fmt)
        except web.HTTPException as exc:
            if exc.status >= 400:
                key = "not_found" if exc.status in (404, 405) else "error"
                response = self.message(request.get(REQUEST), key, exc.status, lang=lang)
            else:
                response = redirect(getattr(exc, "location", "/"))
        except Exception:
            # Anything unexpected is a bug: logged with its traceback, the person sees a
            # page saying so in their language, never the traceback.
            log.exception("zone page failed", path=request.path, method=request.method)
            response = self.message(request.get(REQUEST), "error", 500, lang=lang)
        return self._secured(request, response)

    async def _guarded(self, request: web.Request, handler: Any, lang: str) -> web.StreamResponse:
        route: Route | None = getattr(handler, "zone_route", None)
        if route is None:  # not in the table: aiohttp's own 404/405
            raise web.HTTPNotFound()
        session = request.cookies.get(SESSION_COOKIE, "")
        new_cookie = not session or len(session) > 100
        if new_cookie:
            session = secrets.token_urlsafe(32)
        async with self.rt.db.acquire() as conn:
            await self.rt.clock.refresh(conn)
            now = self.rt.clock.now()
            acting = None if new_cookie else await service.acting(conn, session, now)
        if acting is not None:
            lang = domain.pick_language(acting.language, None)
        req = Req(request, acting, session, lang, now, self._address(request), new_cookie)
        request[REQUEST] = req
        if request.method not in SAFE:
            await self._check_form(req)
        self._check_need(req, route.needs)
        return await route.handler(req)

    def _check_need(self, req: Req, needs: str) -> None:
        if needs == PUBLIC:
            return
        if req.acting is None:
            REFUSED.labels("login").inc()
            raise web.HTTPSeeOther("/login")
        if needs == LOGGED_IN:
            return
        if req.acting.membership is None:
            raise web.HTTPSeeOther("/customers")
        if needs != MEMBER and not req.acting.membership.may(needs):
            REFUSED.labels("right").inc()
            raise Refused(403, "no_right")

    async def _check_form(self, req: Req) -> None:
        request = req.request
        hosts = frozenset({self.public_origin, f"{request.scheme}://{request.host}".lower()})
        if domain.cross_site(
            request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"), hosts
        ):
            REFUSED.labels("cross-site").inc()
            log.warning(
                "cross-site form refused",
                path=request.path,
                origin=request.headers.get("Origin"),
                fetch_site=request.headers.get("Sec-Fetch-Site"),
            )
            raise Refused(403, "forbidden_form")
        form = await request.post()
        presented = str(form.get("csrf", ""))
        if req.new_cookie or not domain.form_token_fits(self.key, req.session, presented):
            REFUSED.labels("form-token").inc()
            log.warning(
                "form without its token refused",
                path=request.path,
                new_session=req.new_cookie,
                token_sent=bool(presented),
            )
            raise Refused(403, "forbidden_form")

    def _secured(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        req = request.get(REQUEST)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        # Link tokens are in paths: never sent to another site. (Not no-referrer: under
        # it a browser sends "Origin: null" with the zone's own forms, refused as foreign.)
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:;"
            " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
        if req is not None and req.new_cookie and SESSION_COOKIE not in response.cookies:
            self._set_session(response, req.session)
        return response

    def _set_session(self, response: web.StreamResponse, value: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            value,
            httponly=True,
            samesite="Lax",
            secure=self.s.zone_cookie_secure,
            path="/",
        )

    def _address(self, request: web.Request) -> str:
        found = networks.client_address(
            request.remote, request.headers.getall("X-Forwarded-For", []), self.trusted
        )
        return str(found) if found is not None else (request.remote or "unknown")

    # --- rendering ----------------------------------------------------------------------------

    def render(self, req: Req, template: str, code: int = 200, **context: Any) -> web.Response:
        context.setdefault("here", req.request.path)
        html = _env.get_template(template).render(
            lang=req.lang,
            t=req.t,
            acting=req.acting,
            languages=domain.LANGUAGES,
            csrf=domain.form_token(self.key, req.session),
            help=self.help,
            **context,
        )
        return web.Response(text=html, content_type="text/html", status=code)

    def message(
        self, req: Req | None, key: str, status: int, lang: str = "en", **fmt: Any
    ) -> web.Response:
        if req is None:  # refused before the request was read: no session, no form token
            t = WORDING[lang]
            html = _env.get_template("message.html").render(
                lang=lang,
                t=t,
                acting=None,
                languages=domain.LANGUAGES,
                csrf="",
                help=self.help,
                here="/",
                message=t[key].format(**fmt),
            )
            return web.Response(text=html, content_type="text/html", status=status)
        # An error page names nothing of the request (its path neither): a missing
        # invoice and another customer's answer byte for byte alike.
        link = "/" if status in (403, 404) else None
        return self.render(
            req,
            "message.html",
            status,
            here="/",
            message=req.t[key].format(**fmt),
            link=link,
            link_text=req.t["back"],
        )

    def money(self, minor: int, currency: str, lang: str) -> str:
        return format_currency(minor / 100, currency, locale=LOCALES[lang])

    def day(self, value: Any, lang: str) -> str:
        return format_date(value, "medium", locale=LOCALES[lang])

    async def _in_transaction(self, work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        async with self.rt.db.acquire() as conn, conn.transaction():
            return await work(conn)

    # --- public pages -------------------------------------------------------------------------

    async def home(self, req: Req) -> web.StreamResponse:
        if req.acting is None:
            raise web.HTTPSeeOther("/login")
        raise web.HTTPSeeOther("/info" if req.acting.membership else "/customers")

    async def login_page(self, req: Req) -> web.StreamResponse:
        status = (
            req.t[req.request.query["done"]]
            if req.request.query.get("done")
            in ("password_set", "invite_accepted", "password_changed")
            else None
        )
        return self.render(req, "login.html", name="", status=status)

    async def login(self, req: Req) -> web.StreamResponse:
        """Throttled per account (the name typed, known or not) and per address, checked
        under a lock of the account's name, so parallel guesses queue instead of slipping
        past the count; a locked account's password is not even checked."""
        form = await req.request.post()
        typed = str(form.get("name", "")).strip()[:320]
        password = str(form.get("password", ""))[: domain.MAX_PASSWORD + 1]
        name = domain.login_name(typed)
        account = name[1] if name else typed.lower()
        async with self.rt.db.acquire() as conn, conn.transaction():
            await conn.execute(Q.lock_account, account)
            until = await service.locked_until(conn, self.throttle, account, req.address, req.now)
            if until is not None:
                LOGINS.labels("throttled").inc()
                await service.record(
                    conn,
                    req.now,
                    "anonymous",
                    "login_throttled",
                    subject=account,
                    address=req.address,
                )
                when = format_datetime(until, "short", locale=LOCALES[req.lang])
                return self.render(
                    req,
                    "login.html",
                    429,
                    name=typed,
                    problem=req.t["throttled"].format(until=when),
                )
            person = None
            if name is not None:
                query = Q.owner_of_contract if name[0] == "contract" else Q.person_by_email
                person = await conn.fetchrow(query, name[1])
            stored = person["password_hash"] if person is not None else None
            if not await service.password_fits(stored, password):
                LOGINS.labels("failed").inc()
                await service.login_failed(conn, self.throttle, account, req.address, req.now)
                await service.record(
                    conn, req.now, "anonymous", "login_failed", subject=account, address=req.address
                )
                return self.render(
                    req, "login.html", 401, name=typed, problem=req.t["login_failed"]
                )
            assert person is not None
            await conn.execute(Q.clear_account_failures, account)
            await conn.execute(Q.prune_sessions, req.now)
            memberships = await conn.fetch(Q.memberships_of_person, person["id"])
            contracts = [m["contract"] for m in memberships]
            acting_for = (
                name[1]
                if name and name[0] == "contract" and name[1] in contracts
                else contracts[0]
                if len(contracts) == 1
                else None
            )
            # No fixation: whatever id the browser brought is dropped, a new one issued.
            await conn.execute(Q.drop_session, domain.digest(req.session))
            session = await service.new_session(
                conn, person["id"], acting_for, req.now, self.s.zone_session_hours
            )
            await service.record(
                conn,
                req.now,
                person["email"],
                "login",
                acting_for,
                address=req.address,
                by=name[0] if name else "",
            )
        LOGINS.labels("ok").inc()
        response = redirect("/info" if acting_for else "/customers")
        self._set_session(response, session)
        return response

    async def logout(self, req: Req) -> web.StreamResponse:
        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(Q.drop_session, domain.digest(req.session))
            assert req.acting is not None
            await service.record(
                conn, req.now, req.acting.email, "logout", req.acting.contract, address=req.address
            )

        await self._in_transaction(work)
        response = redirect("/login")
        self._set_session(response, secrets.token_urlsafe(32))
        return response

    async def access_page(self, req: Req) -> web.StreamResponse:
        return self.render(req, "access.html")

    async def request_access(self, req: Req) -> web.StreamResponse:
        """Contract number and the e-mail on record of its owner: a one-time link to that
        address. The answer is the same page whether or not either exists or matched."""
        form = await req.request.post()
        contract = str(form.get("contract", "")).strip()[:20]
        email = str(form.get("email", "")).strip().lower()[:320]

        async def work(conn: asyncpg.Connection) -> None:
            owner = await conn.fetchval(Q.contact_on_record, contract, email)
            sent = bool(owner)
            if sent:
                link = Link("access", email, contract, True, domain.RIGHTS)
                await self._email_link(conn, req, link, req.lang, contract=contract)
            await service.record(
                conn,
                req.now,
                "anonymous",
                "access_requested",
                contract or None,
                subject=email,
                address=req.address,
                sent=sent,
            )

        return await self._sent(req, work, "access_sent", email)

    async def reset_page(self, req: Req) -> web.StreamResponse:
        return self.render(req, "reset.html")

    async def request_reset(self, req: Req) -> web.StreamResponse:
        form = await req.request.post()
        email = str(form.get("email", "")).strip().lower()[:320]

        async def work(conn: asyncpg.Connection) -> None:
            person = await conn.fetchrow(Q.person_by_email, email)
            if person is not None:
                link = Link("reset", email, None, False, ())
                await self._email_link(conn, req, link, person["language"])
            await service.record(
                conn,
                req.now,
                "anonymous",
                "reset_requested",
                subject=email,
                address=req.address,
                sent=person is not None,
            )

        return await self._sent(req, work, "reset_sent", email)

    async def _sent(
        self,
        req: Req,
        work: Callable[[asyncpg.Connection], Awaitable[None]],
        key: str,
        mailbox: str,
    ) -> web.Response:
        """Do ``work`` (which may e-mail a link) and answer with the one page that says
        a link went out if the details were right, whether they were or not.

        Throttled first, with the login's counter and limits: requests for ``mailbox``
        (the address typed) and from the client's address, each counted whether or not it
        matched anything, so nobody floods an owner's inbox and the throttled answer
        says nothing of what exists either. Serialised per mailbox, like logins."""

        async def guarded(conn: asyncpg.Connection) -> datetime | None:
            await conn.execute(Q.lock_account, f"link:{mailbox}")
            until = await service.locked_until(
                conn, self.throttle, mailbox, req.address, req.now, service.LINK_KINDS
            )
            if until is not None:
                await service.record(
                    conn, req.now, "anonymous", "link_throttled", subject=mailbox,
                    address=req.address,
                )  # fmt: skip
                return until
            await service.link_requested(conn, self.throttle, mailbox, req.address, req.now)
            await work(conn)
            return None

        until = await self._in_transaction(guarded)
        if until is not None:
            when = format_datetime(until, "short", locale=LOCALES[req.lang])
            return self.render(
                req, "message.html", 429, message=req.t["link_throttled"].format(until=when)
            )
        self.wake_sender()
        hours = _n(self.s.zone_link_hours)
        return self.render(req, "message.html", message=req.t[key].format(hours=hours))

    async def _email_link(
        self,
        conn: asyncpg.Connection,
        req: Req,
        link: Link,
        lang: str,
        invited_by: int | None = None,
        **fmt: Any,
    ) -> None:
        await email_link(conn, self.s, req.now, link, lang, invited_by, **fmt)

    async def _link_context(self, req: Req) -> tuple[Link, dict[str, Any]]:
        token = req.request.match_info["token"]
        async with self.rt.db.acquire() as conn:
            link = await service.live_link(conn, token, req.now)
            if link is None:
                raise Refused(404, "link_invalid")
            person = await conn.fetchrow(Q.person_by_email, link.email)
            customer = None
            if link.purpose == "invite" and link.contract is not None:
                row = await conn.fetchrow(Q.customer, link.contract)
                customer = row["customer_name"] if row else link.contract
        accept_only = (
            link.purpose == "invite" and person is not None and bool(person["password_hash"])
        )
        return link, {"email": link.email, "customer": customer, "accept_only": accept_only}

    async def link_page(self, req: Req) -> web.StreamResponse:
        _, context = await self._link_context(req)
        return self.render(req, "link.html", **context)

    async def use_link(self, req: Req) -> web.StreamResponse:
        link, context = await self._link_context(req)
        form = await req.request.post()
        password_hash = None
        if not context["accept_only"]:
            password = str(form.get("password", ""))
            problem = self._password_problem(
                req, password, str(form.get("password2", "")), link.email
            )
            if problem:
                return self.render(req, "link.html", 400, problem=problem, **context)
            password_hash = await service.hash_password(password)
        token = req.request.match_info["token"]

        async def work(conn: asyncpg.Connection) -> tuple[int, Link] | None:
            used = await service.use_link(conn, token, password_hash, req.lang, req.now)
            if used is not None:
                await service.record(
                    conn,
                    req.now,
                    used[1].email,
                    f"link_used_{used[1].purpose}",
                    used[1].contract,
                    address=req.address,
                    rights=list(used[1].rights),
                    owner=used[1].owner,
                    password_set=password_hash is not None,
                )
            return used

        try:
            used = await self._in_transaction(work)
        except service.OwnerTaken:
            raise Refused(404, "link_invalid") from None
        if used is None:
            raise Refused(404, "link_invalid")
        done = "invite_accepted" if context["accept_only"] else "password_set"
        raise web.HTTPSeeOther(f"/login?done={done}")

    def _password_problem(self, req: Req, password: str, again: str, email: str) -> str | None:
        problem = domain.password_problem(password, email)
        if problem is not None:
            return req.t[problem].format(min=domain.MIN_PASSWORD)
        if password != again:
            return req.t["mismatch"]
        return None

    async def choose_language(self, req: Req) -> web.StreamResponse:
        form = await req.request.post()
        lang = str(form.get("language", ""))
        if lang not in domain.LANGUAGES:
            raise Refused(400, "error")
        if req.acting is not None:
            person = req.acting.person_id
            async with self.rt.db.acquire() as conn:
                await conn.execute(Q.set_language, person, lang)
        back = str(form.get("back", "/"))
        if not back.startswith("/") or back.startswith("//") or back.startswith("/link/"):
            back = "/"
        response = redirect(back)
        response.set_cookie(
            LANGUAGE_COOKIE,
            lang,
            max_age=365 * 86400,
            httponly=True,
            samesite="Lax",
            secure=self.s.zone_cookie_secure,
            path="/",
        )
        return response

    # --- a logged-in person -------------------------------------------------------------------

    async def password_page(self, req: Req) -> web.StreamResponse:
        return self.render(req, "password.html")

    async def change_password(self, req: Req) -> web.StreamResponse:
        assert req.acting is not None
        form = await req.request.post()
        async with self.rt.db.acquire() as conn:
            person = await conn.fetchrow(Q.person_by_email, req.acting.email)
        if not await service.password_fits(person["password_hash"], str(form.get("current", ""))):
            return self.render(req, "password.html", 400, problem=req.t["wrong_password"])
        password = str(form.get("password", ""))
        problem = self._password_problem(
            req, password, str(form.get("password2", "")), req.acting.email
        )
        if problem:
            return self.render(req, "password.html", 400, problem=problem)
        hashed = await service.hash_password(password)

        async def work(conn: asyncpg.Connection) -> None:
            assert req.acting is not None
            await conn.execute(Q.set_password, req.acting.person_id, hashed, req.now)
            # Every other session of the person ends: a stolen one does not survive this.
            await conn.execute(
                Q.drop_sessions_of_person, req.acting.person_id, domain.digest(req.session)
            )
            await service.record(
                conn,
                req.now,
                req.acting.email,
                "password_changed",
                req.acting.contract,
                address=req.address,
            )

        await self._in_transaction(work)
        return self.render(req, "password.html", status=req.t["password_changed"])

    async def customers(self, req: Req) -> web.StreamResponse:
        assert req.acting is not None
        async with self.rt.db.acquire() as conn:
            rows = await conn.fetch(Q.memberships_of_person, req.acting.person_id)
        return self.render(req, "customers.html", memberships=[dict(r) for r in rows])

    async def switch(self, req: Req) -> web.StreamResponse:
        assert req.acting is not None
        form = await req.request.post()
        contract = str(form.get("contract", ""))

        async def work(conn: asyncpg.Connection) -> bool:
            assert req.acting is not None
            done = await conn.execute(Q.switch_session, domain.digest(req.session), contract)
            if done != "UPDATE 1":
                return False
            await service.record(
                conn, req.now, req.acting.email, "switched", contract, address=req.address
            )
            return True

        if not await self._in_transaction(work):
            raise Refused(404, "not_found")
        raise web.HTTPSeeOther("/info")

    # --- a customer's pages: the contract is always the membership's ------------------------

    async def info(self, req: Req, code: int = 200, **extra: Any) -> web.StreamResponse:
        async with self.rt.db.acquire() as conn:
            customer = await conn.fetchrow(Q.customer, req.contract)
            contacts = await conn.fetch(Q.contacts_of, req.contract)
        shown = dict(customer) if customer else {"contract": req.contract, "customer_name": ""}
        own = next((dict(c) for c in contacts if c["owner"]), None)
        return self.render(
            req,
            "info.html",
            code,
            customer=shown,
            contacts=[dict(c) for c in contacts],
            details=extra.pop("form", None) or own,
            problems=extra.pop("problems", {}),
            **extra,
        )

    def _invoice(self, row: Any, lang: str, today: Any) -> dict[str, Any]:
        view = domain.invoice_view(
            row["amount_minor"],
            row["cancelled"],
            row["settlement"],
            row["paid_minor"],
            row["open_minor"],
            overdue=row["due_on"] < today,
        )
        cur = row["currency"]
        return {
            **dict(row),
            "issued_on": self.day(row["issued_on"], lang),
            "due_on": self.day(row["due_on"], lang),
            "amount": self.money(row["amount_minor"], cur, lang),
            "paid": self.money(view.paid_minor, cur, lang),
            "open": self.money(view.open_minor, cur, lang),
            "state": view.state,
        }

    async def invoices(self, req: Req) -> web.StreamResponse:
        async with self.rt.db.acquire() as conn:
            rows = await conn.fetch(Q.invoices_of, req.contract)
        today = req.now.date()
        shown = [self._invoice(r, req.lang, today) for r in rows]
        return self.render(req, "invoices.html", invoices=shown)

    async def invoice(self, req: Req) -> web.StreamResponse:
        number = req.request.match_info["number"]
        async with self.rt.db.acquire() as conn:
            row = await conn.fetchrow(Q.invoice_of, req.contract, number)
            files = await conn.fetch(Q.documents_of, req.contract, [number])
        if row is None:
            raise Refused(404, "not_found")
        shown = self._invoice(row, req.lang, req.now.date())
        pay = None
        if shown["state"] in ("open", "partially_paid", "overdue"):
            left = domain.invoice_view(
                row["amount_minor"], row["cancelled"], row["settlement"], row["paid_minor"],
                row["open_minor"], overdue=False,
            ).open_minor  # fmt: skip
            pay = self._to_pay(
                req, row["account"], row["currency"], left, row["vs"], row["ss"], row["due_on"],
                row["invoice_number"],
            )  # fmt: skip
        offered = {FILES_BY_TYPE[f["media_type"]] for f in files}
        return self.render(req, "invoice.html", i=shown, pay=pay, files=sorted(offered))

    def _payment(self, row: Any, lang: str) -> dict[str, Any]:
        cur = row["currency"]
        allocations = [
            {**a, "amount": self.money(a["amount_minor"], cur, lang)} for a in row["allocations"]
        ]
        paired = ", ".join(a["invoice_number"] for a in allocations) or row["rule"]
        return {
            **dict(row),
            "booked_on": self.day(row["booked_on"], lang),
            "reversed_on": self.day(row["reversed_on"], lang) if row["reversed_on"] else None,
            "amount": self.money(row["amount_minor"], cur, lang),
            "credit": self.money(row["credit_minor"], cur, lang),
            "credit_left": self.money(row["credit_balance_minor"], cur, lang),
            "allocations": allocations,
            "paired": paired,
        }

    async def payments(self, req: Req) -> web.StreamResponse:
        async with self.rt.db.acquire() as conn:
            rows = await conn.fetch(Q.payments_of, req.contract)
        return self.render(
            req, "payments.html", payments=[self._payment(r, req.lang) for r in rows]
        )

    async def payment(self, req: Req) -> web.StreamResponse:
        row = None
        number = _number(req.request.match_info["id"])
        if number is not None:
            async with self.rt.db.acquire() as conn:
                row = await conn.fetchrow(Q.payment_of, req.contract, number)
        if row is None:
            raise Refused(404, "not_found")
        return self.render(req, "payment.html", p=self._payment(row, req.lang))

    async def users(self, req: Req, **extra: Any) -> web.StreamResponse:
        async with self.rt.db.acquire() as conn:
            rows = await conn.fetch(Q.members_of, req.contract)
            invites = await conn.fetch(Q.pending_invites, req.contract, req.now)
        users = [
            {**dict(r), "changeable": domain.may_change(req.member, _membership(r, req.contract))}
            for r in rows
        ]
        return self.render(
            req,
            "users.html",
            users=users,
            invites=[dict(i) for i in invites],
            rights=domain.RIGHTS,
            **extra,
        )

    async def invite(self, req: Req) -> web.StreamResponse:
        assert req.acting is not None
        form = await req.request.post()
        try:
            email = contact_rules.email_address(str(form.get("email", "")).strip()).lower()
        except contact_rules.ContactError:
            return await self.users(req, problem=req.t["bad_email"])
        try:
            rights = domain.parse_rights(str(v) for v in form.getall("rights", []))
        except domain.RightsError:
            raise Refused(400, "error") from None
        acting = req.acting

        async def work(conn: asyncpg.Connection) -> None:
            customer = await conn.fetchrow(Q.customer, req.contract)
            link = Link("invite", email, req.contract, False, rights)
            name = customer["customer_name"] if customer else req.contract
            await self._email_link(
                conn, req, link, req.lang, acting.person_id, inviter=acting.email, customer=name
            )
            await service.record(
                conn,
                req.now,
                acting.email,
                "invited",
                req.contract,
                subject=email,
                address=req.address,
                rights=list(rights),
            )

        await self._in_transaction(work)
        self.wake_sender()
        return await self.users(req, status=req.t["invited"].format(email=email))

    async def _target(self, conn: asyncpg.Connection, req: Req) -> Any:
        """The member the URL names, of the customer acted for (else 404, as a person who
        does not exist), and one the acting member may change (else 403)."""
        person = _number(req.request.match_info["person"])
        row = None if person is None else await conn.fetchrow(Q.member_of, req.contract, person)
        if row is None:
            raise Refused(404, "not_found")
        if not domain.may_change(req.member, _membership(row, req.contract)):
            raise Refused(403, "cannot_change")
        return row

    async def user(self, req: Req) -> web.StreamResponse:
        async with self.rt.db.acquire() as conn:
            row = await self._target(conn, req)
        return self.render(req, "user.html", u=dict(row), rights=domain.RIGHTS)

    async def set_rights(self, req: Req) -> web.StreamResponse:
        form = await req.request.post()
        try:
            rights = domain.parse_rights(str(v) for v in form.getall("rights", []))
        except domain.RightsError:
            raise Refused(400, "error") from None

        async def work(conn: asyncpg.Connection) -> Any:
            assert req.acting is not None
            row = await self._target(conn, req)
            await conn.execute(Q.set_rights, req.contract, row["person_id"], list(rights))
            await service.record(
                conn,
                req.now,
                req.acting.email,
                "rights_changed",
                req.contract,
                subject=row["email"],
                address=req.address,
                before=list(row["rights"]),
                after=list(rights),
            )
            return row

        row = await self._in_transaction(work)
        return self.render(
            req,
            "user.html",
            status=req.t["saved"],
            u={**dict(row), "rights": rights},
            rights=domain.RIGHTS,
        )

    async def remove_user(self, req: Req) -> web.StreamResponse:
        async def work(conn: asyncpg.Connection) -> None:
            assert req.acting is not None
            row = await self._target(conn, req)
            await conn.execute(Q.remove_membership, req.contract, row["person_id"])
            await service.record(
                conn,
                req.now,
                req.acting.email,
                "user_removed",
                req.contract,
                subject=row["email"],
                address=req.address,
            )

        await self._in_transaction(work)
        return await self.users(req, status=req.t["removed"])

    # --- services, access and documents -----------------------------------------------------

    def _to_pay(
        self,
        req: Req,
        account: str,
        currency: str,
        amount_minor: int,
        vs: str,
        ss: str,
        due_on: date,
        number: str,
    ) -> dict[str, Any]:
        """The payment data of one invoice in text, and its payment QR code (the one its
        PDF carries: SPAYD for CZK, PAY by square for EUR to a Slovak account, EPC for other
        EUR) where one fits; ``payload`` is what the code says."""
        code: tuple[str, str] | None = None
        try:
            code = payqr.for_payment(
                account, currency, amount_minor, vs, ss, due_on, self.s.company_name,
                message=number,
            )  # fmt: skip
        except ValueError as exc:  # HUF without a BIC, an account that is no IBAN
            log.info("no payment QR code", invoice=number, reason=str(exc))
        return {
            "invoice_number": number,
            "account": account,
            "amount": self.money(amount_minor, currency, req.lang),
            "amount_minor": amount_minor,
            "currency": currency,
            "vs": vs,
            "ss": ss,
            "due_on": self.day(due_on, req.lang),
            "qr_kind": code[0] if code else None,
            "qr_payload": code[1] if code else None,
            "qr_svg": Markup(payqr.svg(code[1])) if code else None,
        }

    async def services(self, req: Req) -> web.StreamResponse:
        async with self.rt.db.acquire() as conn:
            row = await conn.fetchrow(Q.services_of, req.contract)
            status = await conn.fetchrow(Q.dunning_status_of, req.contract)
        today = req.now.date()
        listed: list[dict[str, Any]] = []
        subscribers: dict[str, list[str]] = {}
        if row is not None:
            subscribers = row["subscribers"]
            given = row["services"]
            if given is None and row["monthly_fee_minor"] > 0:  # a producer before services
                given = [{"kind": "tariff", "description": req.t["svc_kind_tariff"],
                          "unit_price_minor": row["monthly_fee_minor"]}]  # fmt: skip
            for svc in given or []:
                starts = _date_or_none(svc.get("starts_on"))
                ends = _date_or_none(svc.get("ends_on"))
                state = domain.service_state(starts, ends, today)
                price = domain.period_price(
                    svc["unit_price_minor"], Decimal(str(svc.get("quantity", 1)))
                )
                listed.append(
                    {
                        "kind": svc["kind"],
                        "description": svc["description"],
                        "price": self.money(price, row["currency"], req.lang),
                        "every": svc.get("every", "month"),
                        "since": self.day(starts, req.lang) if starts else None,
                        "until": self.day(ends, req.lang) if ends else None,
                        "state": state,
                        "state_text": req.t[f"svc_state_{state}"].format(
                            day=self.day(starts, req.lang) if starts else ""
                        ),
                    }
                )
        addresses = [
            (key, subscribers.get(key) or [])
            for key in ("ipv4", "ipv6", "ipv4_prefixes", "ipv6_prefixes")
            if subscribers.get(key)
        ]
        stage = status["stage"] if status is not None else "active"
        return self.render(req, "services.html", services=listed, addresses=addresses, stage=stage)

    async def situation(self, req: Req) -> web.StreamResponse:
        """Why access is limited, what happens next and when, and what to pay to end it:
        the contract's latest ``dunning.status``, the explanation ``billing dunning
        explain`` gives operators, in the person's language."""
        async with self.rt.db.acquire() as conn:
            row = await conn.fetchrow(Q.dunning_status_of, req.contract)
        if row is None:
            return self.render(req, "situation.html", s=None)
        st = row["status"]
        lang, tz = req.lang, ZoneInfo(TIMEZONES[req.lang])

        def when(text: str) -> str:
            """A moment in the page's time zone: the day alone when it is at midnight (a
            step falls due at the start of a day), else the day and time."""
            at = datetime.fromisoformat(text).astimezone(tz)
            if at.time() == time(0, 0):
                return self.day(at.date(), lang)
            return format_datetime(at, "short", tzinfo=tz, locale=LOCALES[lang])

        currency = st["currency"] or "CZK"
        view = {
            "stage": st["stage"],
            "count": len(st["invoices"]),
            "since": self.day(date.fromisoformat(st["overdue_since"]), lang)
            if st["overdue_since"]
            else None,
            "amount": self.money(st["overdue_minor"], currency, lang),
            "reached": [{"action": u["action"], "at": when(u["at"])} for u in st["steps_reached"]],
            "upcoming": [{"action": u["action"], "at": when(u["at"])} for u in st["upcoming"]],
            "promised_until": when(st["promised_until"]) if st["promised_until"] else None,
            "to_pay": [
                self._to_pay(
                    req,
                    st["account"],
                    i["currency"],
                    i["open_minor"],
                    i["vs"],
                    i["ss"],
                    date.fromisoformat(i["due_on"]),
                    i["invoice_number"],
                )
                for i in st["invoices"]
            ],
        }
        return self.render(req, "situation.html", s=view)

    async def document(self, req: Req) -> web.StreamResponse:
        """An invoice's PDF or ISDOC, as invoicing archived it: another customer's, or one
        not made yet, answers 404 as a missing one; bytes that no longer hash to the SHA-256
        they were archived under are refused (500, logged), never sent."""
        number = req.request.match_info["number"]
        media_type = FILES.get(req.request.match_info["file"])
        row = None
        if media_type is not None:
            async with self.rt.db.acquire() as conn:
                row = await conn.fetchrow(Q.document_of, req.contract, number, media_type)
        if row is None:
            raise Refused(404, "not_found")
        if hashlib.sha256(row["content"]).hexdigest() != row["sha256"]:
            log.error("document does not match its SHA-256", number=number, media=media_type)
            raise Refused(500, "error")
        return web.Response(
            body=row["content"],
            content_type=row["media_type"],
            headers={
                "Content-Disposition": f'attachment; filename="{row["filename"]}"',
                "X-Content-SHA256": row["sha256"],
            },
        )


# URL name of an invoice's file -> its media type in document.ready, and back.
FILES = {"pdf": "application/pdf", "isdoc": "application/xml"}
FILES_BY_TYPE = {v: k for k, v in FILES.items()}
# The time zone an Access page's moments are shown in, by the page's language.
TIMEZONES = {"cs": "Europe/Prague", "sk": "Europe/Bratislava", "hu": "Europe/Budapest",
             "en": "Europe/Prague"}  # fmt: skip


def _date_or_none(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value))


def _bound(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """aiohttp's handler for a route: never called itself (the guard calls the route's
    handler with the checked request); it carries the route for the guard to find."""

    async def unreachable(request: web.Request) -> web.StreamResponse:
        raise RuntimeError(f"{route.path} reached without the zone's guard")

    unreachable.zone_route = route  # type: ignore[attr-defined]
    return unreachable


async def email_link(
    conn: asyncpg.Connection,
    settings: ZoneSettings,
    now: datetime,
    link: Link,
    lang: str,
    invited_by: int | None = None,
    **fmt: Any,
) -> None:
    """Make a one-time link and queue the e-mail that carries it, in ``conn``'s
    transaction (a page's, or ``billing zone invite``'s)."""
    if link.purpose == "invite":
        valid, fmt["days"] = timedelta(days=settings.zone_invite_days), settings.zone_invite_days
    else:
        valid, fmt["hours"] = timedelta(hours=settings.zone_link_hours), settings.zone_link_hours
    token = await service.make_link(conn, now, link, valid, invited_by)
    t = WORDING[domain.pick_language(lang, None)]
    body = t[f"mail_{link.purpose}_body"].format(
        link=f"{settings.zone_public_url.rstrip('/')}/link/{token}",
        company=settings.company_name,
        **{k: _n(v) if isinstance(v, float) else v for k, v in fmt.items()},
    )
    subject = t[f"mail_{link.purpose}_subject"]
    await service.queue_mail(conn, now, Mail(link.email, subject, body))


def redirect(location: str) -> web.Response:
    """A 303 to ``location`` (returned, so cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": location})


def _membership(row: Any, contract: str) -> domain.Membership:
    return domain.Membership(row["person_id"], contract, row["owner"], tuple(row["rights"]))


def _n(value: float) -> str:
    return f"{value:g}"


def check_trusted_proxies(settings: ZoneSettings) -> None:
    try:
        networks.trusted_networks(settings.zone_trusted_proxies)
    except networks.NetworkError as exc:
        from services.runtime.auth import ConfigError

        raise ConfigError(str(exc)) from None


async def serve(rt: Runtime[ZoneSettings], wake_sender: Callable[[], None]) -> web.AppRunner:
    pages = Pages(rt)
    pages.wake_sender = wake_sender
    runner = web.AppRunner(pages.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, rt.settings.zone_host, rt.settings.zone_port).start()
    return runner
