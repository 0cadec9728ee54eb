"""The customer's contacts in the zone (docs/zone.md#contacts): listed, added, changed and
removed by a member with the right to manage users and contacts; the customer's own
details (its owner contact) changed by a member with the right to edit contact details,
and the operator told.

The zone owns no contract data. A change goes out as ``contacts.change_requested`` (in the
transaction that audits it): invoicing applies it to the contract's contacts and publishes
``contract.upserted`` again, which notify and this zone's read model follow. The page
shows the contacts as invoicing last published them; a change appears once applied (in
well under a second in a running system). Every contact is found by the customer acted
for and its position from the URL: another customer's answers as one that does not exist.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Literal

import asyncpg
from aiohttp import web

from schemas import events as ev
from services.runtime.unit import Unit
from services.zone import domain, service
from services.zone.answers import WORDING, Refused, number
from services.zone.service import Mail, Q

if TYPE_CHECKING:
    from services.zone.web import Pages, Req

SOURCE = "/services/zone"


def contact_of(row: Any) -> ev.Contact:
    """A contact on record as invoicing sent it (the ``before`` of a change)."""
    return ev.Contact(
        name=row["name"],
        email=row["email"],
        phone=row["phone"],
        language=row["language"],
        categories=list(row["categories"]),
        owner=row["owner"],
    )


def shown(row: Any) -> dict[str, Any]:
    return {**dict(row), "shown": domain.shown_categories(row["categories"])}


def problems_in(req: Req, problems: domain.Problems) -> dict[str, str]:
    """Each field's problem in the person's language, with the rule's detail."""
    return {
        field: req.t[key] + (f" ({detail})" if detail else "")
        for field, (key, detail) in problems.items()
    }


async def form_of(req: Req) -> domain.ContactForm:
    form = await req.request.post()
    return domain.ContactForm(
        name=str(form.get("name", "")).strip(),
        email=str(form.get("email", "")).strip(),
        phone=str(form.get("phone", "")).strip(),
        language=str(form.get("language", "")).strip(),
        categories=tuple(str(v) for v in form.getall("categories", [])),
    )


class ContactPages:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    async def _row(self, conn: asyncpg.Connection, req: Req) -> Any:
        """The contact the URL names, of the customer acted for; else 404."""
        position = number(req.request.match_info["position"])
        row = None
        if position is not None:
            row = await conn.fetchrow(Q.contact_of, req.contract, position)
        if row is None:
            raise Refused(404, "not_found")
        return row

    async def _as_shown(self, req: Req) -> Any:
        """The contact the URL names, for a change or removal: still the one the page
        showed (its version posted back), else 409 (reload and try again)."""
        async with self.pages.rt.db.acquire() as conn:
            row = await self._row(conn, req)
        posted = await req.request.post()
        if str(posted.get("version", "")) != domain.contact_version(contact_of(row)):
            raise Refused(409, "contact_changed_meanwhile")
        return row

    async def list(self, req: Req, code: int = 200, **extra: Any) -> web.StreamResponse:
        async with self.pages.rt.db.acquire() as conn:
            rows = await conn.fetch(Q.contacts_of, req.contract)
        return self.pages.render(
            req,
            "contacts.html",
            code,
            contacts=[shown(r) for r in rows],
            categories=list(domain.CATEGORIES),
            form=extra.pop("form", None),
            problems=extra.pop("problems", {}),
            **extra,
        )

    async def one(self, req: Req, code: int = 200, **extra: Any) -> web.StreamResponse:
        async with self.pages.rt.db.acquire() as conn:
            row = await self._row(conn, req)
        return self.pages.render(
            req,
            "contact.html",
            code,
            c=extra.pop("form", None) or shown(row),
            position=row["position"],
            version=domain.contact_version(contact_of(row)),
            owner=row["owner"],
            categories=list(domain.CATEGORIES),
            problems=extra.pop("problems", {}),
            **extra,
        )

    async def add(self, req: Req) -> web.StreamResponse:
        form = await form_of(req)
        after, problems = domain.contact_from_form(form, None)
        if after is None:
            problem = problems_in(req, problems)
            return await self.list(req, 400, form=_shown_form(form), problems=problem)
        await self.request(req, "add", None, after)
        return await self.list(req, status=req.t["contact_change_sent"])

    async def change(self, req: Req) -> web.StreamResponse:
        row = await self._as_shown(req)
        form = await form_of(req)
        before = contact_of(row)
        after, problems = domain.contact_from_form(form, before)
        if after is None:
            problem = problems_in(req, problems)
            return await self.one(req, 400, form=_shown_form(form), problems=problem)
        if after == before:
            return await self.one(req, status=req.t["contact_unchanged"])
        await self.request(req, "change", before, after)
        return await self.list(req, status=req.t["contact_change_sent"])

    async def remove(self, req: Req) -> web.StreamResponse:
        row = await self._as_shown(req)
        if row["owner"]:
            raise Refused(403, "cannot_remove_owner")
        await self.request(req, "remove", contact_of(row), None)
        return await self.list(req, status=req.t["contact_change_sent"])

    async def own_details(self, req: Req) -> web.StreamResponse:
        """The customer's own details (its owner contact), with the right to edit contact
        details; the operator is told at the support address."""
        async with self.pages.rt.db.acquire() as conn:
            row = await conn.fetchrow(Q.owner_contact_of, req.contract)
        if row is None:
            raise Refused(404, "not_found")
        form = await form_of(req)
        before = contact_of(row)
        after, problems = domain.contact_from_form(form, before, keep_categories=True)
        if after is None:
            return await self.pages.info(
                req, 400, form=_shown_form(form), problems=problems_in(req, problems)
            )
        if after == before:
            return await self.pages.info(req, status=req.t["contact_unchanged"])
        await self.request(req, "change", before, after, tell_operator=True)
        return await self.pages.info(req, status=req.t["contact_change_sent"])

    async def request(
        self,
        req: Req,
        action: Literal["add", "change", "remove"],
        before: ev.Contact | None,
        after: ev.Contact | None,
        tell_operator: bool = False,
    ) -> None:
        """Publish the change for invoicing, audited, in one transaction (the outbox)."""
        assert req.acting is not None
        acting = req.acting
        change = ev.ContactChangeRequested(
            contract=req.contract,
            request_id=str(uuid.uuid4()),
            action=action,
            before=before,
            after=after,
            requested_by=acting.email,
            requested_at=req.now,
        )
        settings = self.pages.s
        named = after or before

        async def work(conn: asyncpg.Connection) -> None:
            unit = Unit(conn, req.now, SOURCE, self.pages.rt.topics)
            unit.emit(req.contract, change)
            await service.record(
                conn,
                req.now,
                acting.email,
                f"contact_{action}_requested",
                req.contract,
                subject=named.name if named else None,
                address=req.address,
                request_id=change.request_id,
                before=before.model_dump(mode="json") if before else None,
                after=after.model_dump(mode="json") if after else None,
            )
            if tell_operator and settings.zone_support_email:
                await service.queue_mail(conn, req.now, self._operator_mail(req, change))
            await unit.flush()

        await self.pages._in_transaction(work)
        self.pages.wake_sender()

    def _operator_mail(self, req: Req, change: ev.ContactChangeRequested) -> Mail:
        assert req.acting is not None and self.pages.s.zone_support_email is not None
        t = WORDING[self.pages.s.zone_operator_language]
        fields = {
            "contract": req.contract,
            "customer": req.acting.customer_name or req.contract,
            "email": req.acting.email,
            "before": _described(change.before),
            "after": _described(change.after),
            "request": change.request_id,
            "company": self.pages.s.company_name,
        }
        return Mail(
            self.pages.s.zone_support_email,
            t["mail_details_operator_subject"].format(**fields),
            t["mail_details_operator_body"].format(**fields),
            reply_to=req.acting.email,
        )


def _described(contact: ev.Contact | None) -> str:
    if contact is None:
        return "-"
    parts = [contact.name, contact.email or "", contact.phone or "", contact.language]
    return ", ".join(p for p in parts if p)


def _shown_form(form: domain.ContactForm) -> dict[str, Any]:
    """What the person typed, shown again with the problems."""
    return {
        "name": form.name,
        "email": form.email,
        "phone": form.phone,
        "language": form.language,
        "shown": tuple(c for c in form.categories if c in domain.CATEGORIES),
    }
