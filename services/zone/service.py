"""The zone's handlers (its read model of customers, contacts on record, invoices, what
was paid on them and payments) and its own operations on people: links, passwords,
logins, sessions, memberships and rights. Each operation runs on a connection inside the
caller's transaction, and records its audit line in the same transaction."""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from schemas import events as ev
from services.runtime import logs, sql
from services.runtime.db import Jsonb
from services.runtime.runs import Run
from services.runtime.unit import Unit
from services.zone import domain
from services.zone.settings import ZoneSettings

Q = sql.load(__file__)
log = logs.get(__name__)

# argon2id with the library's defaults (RFC 9106's second recommendation: 64 MiB, 3
# passes, 4 lanes): about 0.15 s a hash on the development machine, in a thread.
HASHER = PasswordHasher()
# Verified when a login names nobody, so that the answer takes as long as for a person.
_NOBODY = HASHER.hash(secrets.token_urlsafe(16))

Settlement = ev.InvoiceSettled | ev.InvoicePartiallyPaid | ev.InvoiceReopened


class Handlers:
    """What the zone keeps of other services' events."""

    async def on_contract(self, unit: Unit, run: Run[ev.ContractUpserted]) -> None:
        last = {d.contract: d for d in run}  # a repeat in the run: the last wins
        items = list(last.values())
        await unit.conn.execute(
            Q.upsert_customers,
            [d.contract for d in items],
            [d.customer_name for d in items],
            [d.language for d in items],
            [d.currency for d in items],
            [d.active for d in items],
            unit.now,
        )
        contacts = [(d.contract, i, c) for d in items for i, c in enumerate(d.contacts)]
        await unit.conn.execute(Q.drop_contacts, list(last))
        await unit.conn.execute(
            Q.insert_contacts,
            [c for c, _, _ in contacts],
            [i for _, i, _ in contacts],
            [x.name for _, _, x in contacts],
            [x.email.lower() if x.email else None for _, _, x in contacts],
            [x.owner for _, _, x in contacts],
            [",".join(x.categories) for _, _, x in contacts],
            [x.phone for _, _, x in contacts],
            [x.language for _, _, x in contacts],
        )
        await self._services(unit, items)

    async def _services(self, unit: Unit, items: list[ev.ContractUpserted]) -> None:
        """The contracts' services and subscriber addresses, for the services page."""
        await unit.conn.execute(
            Q.upsert_services,
            [d.contract for d in items],
            [d.currency for d in items],
            [d.monthly_fee_minor for d in items],
            # as JSON text: a list in a jsonb[] parameter would be read as a dimension
            [
                None
                if d.services is None
                else Jsonb(json.dumps([s.model_dump(mode="json") for s in d.services]))
                for d in items
            ],
            [Jsonb(d.subscribers.model_dump_json()) for d in items],
            unit.now,
        )

    async def on_invoice_issued(self, unit: Unit, run: Run[ev.InvoiceIssued]) -> None:
        items = list(run)
        await unit.conn.execute(
            Q.upsert_invoices,
            [d.invoice_number for d in items],
            [d.contract for d in items],
            [d.vs for d in items],
            [d.ss for d in items],
            [d.period for d in items],
            [d.issued_on for d in items],
            [d.due_on for d in items],
            [d.amount_minor for d in items],
            [d.currency for d in items],
            [d.account for d in items],
        )

    async def on_invoice_cancelled(self, unit: Unit, run: Run[ev.InvoiceCancelled]) -> None:
        for d in run:
            unit.stage(Q.cancel_invoice, d.invoice_number)

    async def on_settlement(self, unit: Unit, run: Run[Settlement]) -> None:
        for d in run:
            if isinstance(d, ev.InvoiceSettled):
                row = (d.paid_minor, 0, "paid")
            elif isinstance(d, ev.InvoicePartiallyPaid):
                row = (d.paid_minor, d.remaining_minor, "partially_paid")
            else:
                row = (d.paid_minor, d.remaining_minor, "open")
            unit.stage(Q.put_settlement, d.invoice_number, d.contract, *row)

    async def on_payment_matched(self, unit: Unit, run: Run[ev.PaymentMatched]) -> None:
        for d in run:
            allocations = [a.model_dump(mode="json") for a in d.allocations]
            unit.stage(
                Q.insert_payment,
                d.contract,
                d.account,
                d.bank_tx_id,
                d.booked_on,
                d.amount_minor,
                d.currency,
                d.rule,
                allocations,
                d.credit_minor,
                d.credit_balance_minor,
            )

    async def on_payment_reversed(self, unit: Unit, run: Run[ev.PaymentReversed]) -> None:
        for d in run:
            unit.stage(Q.reverse_payment, d.account, d.bank_tx_id, d.booked_on)

    async def on_document(self, unit: Unit, run: Run[ev.DocumentReady]) -> None:
        """Each file of each document, with its SHA-256 (the event's model has checked
        that the bytes hash to it: a corrupted file never gets this far)."""
        files = [(d, a) for d in run for a in d.attachments]
        await unit.conn.execute(
            Q.insert_documents,
            [d.number for d, _ in files],
            [a.media_type for _, a in files],
            [d.contract for d, _ in files],
            [d.kind for d, _ in files],
            [a.filename for _, a in files],
            [a.sha256 for _, a in files],
            [a.content for _, a in files],
            unit.now,
        )

    async def on_dunning_status(self, unit: Unit, run: Run[ev.DunningStatus]) -> None:
        for d in run:
            unit.stage(
                Q.put_dunning_status, d.contract, d.stage, d.decided_at, d.model_dump(mode="json")
            )


# --- people -------------------------------------------------------------------------------


def new_token() -> tuple[str, bytes]:
    """A random token (a link's, a session's) and the hash it is stored by."""
    token = secrets.token_urlsafe(32)
    return token, domain.digest(token)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, password)


async def password_fits(stored: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` hashes; without a stored hash a dummy is
    verified all the same, so a missing person answers as slowly as a present one."""

    def verify() -> bool:
        try:
            return HASHER.verify(stored or _NOBODY, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


async def record(
    conn: asyncpg.Connection,
    now: datetime,
    actor: str,
    action: str,
    contract: str | None = None,
    subject: str | None = None,
    address: str | None = None,
    **details: Any,
) -> None:
    """One line of the zone's audit log, in the caller's transaction."""
    if not conn.is_in_transaction():
        raise RuntimeError(f"zone audit {action!r} recorded outside its transaction")
    await conn.execute(Q.record, now, actor, action, contract, subject, address, details)


@dataclass(frozen=True)
class Mail:
    recipient: str
    subject: str
    body: str
    reply_to: str | None = None


async def queue_mail(conn: asyncpg.Connection, now: datetime, mail: Mail) -> None:
    await conn.execute(Q.queue_mail, mail.recipient, mail.subject, mail.body, now, mail.reply_to)


LinkPurpose = Literal["access", "reset", "invite"]


@dataclass(frozen=True)
class Link:
    purpose: LinkPurpose
    email: str
    contract: str | None
    owner: bool
    rights: tuple[str, ...]


async def make_link(
    conn: asyncpg.Connection,
    now: datetime,
    link: Link,
    valid: timedelta,
    invited_by: int | None = None,
) -> str:
    """Store a one-time link (by its token's hash); the token, for the e-mail only."""
    token, hashed = new_token()
    await conn.execute(
        Q.add_link,
        hashed,
        link.purpose,
        link.email,
        link.contract,
        link.owner,
        list(link.rights),
        invited_by,
        now,
        now + valid,
    )
    return token


async def live_link(conn: asyncpg.Connection, token: str, now: datetime) -> Link | None:
    row = await conn.fetchrow(Q.live_link, domain.digest(token), now)
    return None if row is None else _link(row)


def _link(row: Any) -> Link:
    return Link(row["purpose"], row["email"], row["contract"], row["owner"], tuple(row["rights"]))


class OwnerTaken(Exception):
    """The contract already has another owner: the link cannot make this person one."""


async def use_link(
    conn: asyncpg.Connection, token: str, password_hash: str | None, language: str, now: datetime
) -> tuple[int, Link] | None:
    """Take the link once and do what it grants: the person (made if new) gets the new
    password (None: an invitation accepted by a person who has one), and for access or an
    invitation the membership it names. None: the link is used, expired or never was."""
    row = await conn.fetchrow(Q.use_link, domain.digest(token), now)
    if row is None:
        return None
    link = _link(row)
    person = await conn.fetchval(Q.add_person, link.email, language, now)
    if password_hash is not None:
        await conn.execute(Q.set_password, person, password_hash, now)
        await conn.execute(Q.drop_sessions_of_person, person, None)  # a new password: all out
    if link.contract is not None and link.purpose in ("access", "invite"):
        if link.owner and await conn.fetchval(Q.owner_taken, link.contract, person) is not None:
            raise OwnerTaken(link.contract)
        rights = list(domain.RIGHTS) if link.owner else list(link.rights)
        await conn.execute(Q.add_membership, person, link.contract, link.owner, rights, now)
    return person, link


async def new_session(
    conn: asyncpg.Connection, person: int, contract: str | None, now: datetime, hours: float
) -> str:
    """A logged-in session: a new random id (never one the browser brought: no fixation),
    acting for ``contract``."""
    token, hashed = new_token()
    await conn.execute(Q.add_session, hashed, person, contract, now, now + timedelta(hours=hours))
    return token


@dataclass(frozen=True)
class Acting:
    """Who is asking, and for which customer with which rights, read anew per request."""

    person_id: int
    email: str
    language: str
    membership: domain.Membership | None
    customer_name: str | None

    @property
    def contract(self) -> str | None:
        return None if self.membership is None else self.membership.contract


async def acting(conn: asyncpg.Connection, session: str, now: datetime) -> Acting | None:
    row = await conn.fetchrow(Q.acting, domain.digest(session), now)
    if row is None:
        return None
    membership = None
    if row["owner"] is not None:  # the LEFT JOIN found the membership
        membership = domain.Membership(
            row["person_id"], row["contract"], row["owner"], tuple(row["rights"])
        )
    return Acting(row["person_id"], row["email"], row["language"], membership, row["customer_name"])


def throttle_of(settings: ZoneSettings) -> domain.Throttle:
    return domain.Throttle(
        timedelta(minutes=settings.zone_throttle_minutes),
        settings.zone_throttle_account,
        settings.zone_throttle_address,
    )


LOGIN_KINDS = ("account", "address")
LINK_KINDS = ("link-account", "link-address")  # requests for links, by mailbox and address


async def locked_until(
    conn: asyncpg.Connection,
    policy: domain.Throttle,
    account: str,
    address: str,
    now: datetime,
    kinds: tuple[str, str] = LOGIN_KINDS,
) -> datetime | None:
    """Until when logins (or link requests: ``LINK_KINDS``) of this account or from this
    address are refused, if they are."""
    since = now - policy.window
    until = [
        domain.locked_until(
            [r["at"] for r in await conn.fetch(Q.failures, kind, key, since)],
            limit,
            policy.window,
            now,
        )
        for kind, key, limit in (
            (kinds[0], account, policy.per_account),
            (kinds[1], address, policy.per_address),
        )
    ]
    found = [u for u in until if u is not None]
    return max(found) if found else None


async def login_failed(
    conn: asyncpg.Connection, policy: domain.Throttle, account: str, address: str, now: datetime
) -> None:
    await conn.execute(Q.prune_failures, now - policy.window)
    await conn.execute(Q.add_failure, account, address, now)


async def link_requested(
    conn: asyncpg.Connection, policy: domain.Throttle, mailbox: str, address: str, now: datetime
) -> None:
    await conn.execute(Q.prune_failures, now - policy.window)
    await conn.execute(Q.add_link_request, mailbox, address, now)
