"""Support requests from the zone (docs/zone.md#support), with the right to send them: the
zone knows who asks, so a request is authorised by construction. In one transaction: the
request stored with its sender; an acknowledgement queued to the sender (in their
language); the request queued to the operator's support address
(``BILLING_ZONE_SUPPORT_EMAIL``, ``Reply-To`` the sender) naming the sender, the customer
and the contract; ``support.requested`` published for a ticket system; the audit line.
The help channels the operator configures are on the page (and in every footer)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from schemas import events as ev
from services.runtime.unit import Unit
from services.zone import domain, service
from services.zone.answers import WORDING, Refused
from services.zone.contact_pages import SOURCE, problems_in
from services.zone.service import Mail, Q

if TYPE_CHECKING:
    from services.zone.web import Pages, Req


class SupportPages:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    async def page(self, req: Req, code: int = 200, **extra: Any) -> web.StreamResponse:
        return self.pages.render(
            req,
            "support.html",
            code,
            open=self.pages.s.zone_support_email is not None,
            form=extra.pop("form", {"about": req.contract}),
            problems=extra.pop("problems", {}),
            **extra,
        )

    async def send(self, req: Req) -> web.StreamResponse:
        assert req.acting is not None
        settings = self.pages.s
        if settings.zone_support_email is None:
            raise Refused(503, "support_closed")
        posted = await req.request.post()
        form = domain.SupportForm(
            subject=str(posted.get("subject", "")).strip(),
            text=str(posted.get("text", "")).replace("\r\n", "\n").strip(),
            about=str(posted.get("about", "")).strip(),
            service=str(posted.get("service", "")).strip(),
        )
        problems = domain.support_problems(form, req.contract)
        if problems:
            return await self.page(req, 400, form=vars(form), problems=problems_in(req, problems))
        acting = req.acting
        about = " · ".join(
            p
            for p in (
                req.t["about_contract"].format(contract=form.about) if form.about else "",
                form.service,
            )
            if p
        )
        request_id = str(uuid.uuid4())

        async def work(conn: asyncpg.Connection) -> None:
            name = await conn.fetchval(Q.contact_name_of, req.contract, acting.email)
            customer = acting.customer_name or req.contract
            event = ev.SupportRequested(
                contract=req.contract,
                request_id=request_id,
                subject=form.subject,
                text=form.text,
                about=about or None,
                customer_name=customer,
                sender_email=acting.email,
                sender_name=name,
                sent_at=req.now,
            )
            await conn.execute(
                Q.add_support_request,
                request_id,
                req.contract,
                acting.person_id,
                acting.email,
                form.subject,
                form.text,
                about or None,
                req.now,
            )
            for mail in self._mails(req, event):
                await service.queue_mail(conn, req.now, mail)
            await service.record(
                conn,
                req.now,
                acting.email,
                "support_requested",
                req.contract,
                address=req.address,
                request_id=request_id,
                subject=form.subject,
            )
            unit = Unit(conn, req.now, SOURCE, self.pages.rt.topics)
            unit.emit(req.contract, event)
            await unit.flush()

        await self.pages._in_transaction(work)
        self.pages.wake_sender()
        sent = req.t["support_sent"].format(email=acting.email, request=request_id[:8])
        return await self.page(req, status=sent)

    def _mails(self, req: Req, event: ev.SupportRequested) -> list[Mail]:
        """The acknowledgement to the sender, and the request to the operator."""
        settings = self.pages.s
        assert settings.zone_support_email is not None
        fields = {
            "contract": event.contract,
            "customer": event.customer_name,
            "name": event.sender_name or "-",
            "email": event.sender_email,
            "about": event.about or "-",
            "subject": event.subject,
            "text": event.text,
            "request": event.request_id,
            "company": settings.company_name,
        }
        mine = req.t
        operator = WORDING[settings.zone_operator_language]
        return [
            Mail(
                event.sender_email,
                mine["mail_support_ack_subject"].format(**fields),
                mine["mail_support_ack_body"].format(**fields),
            ),
            Mail(
                settings.zone_support_email,
                operator["mail_support_operator_subject"].format(**fields),
                operator["mail_support_operator_body"].format(**fields),
                reply_to=event.sender_email,
            ),
        ]
