"""``billing zone invite``: an operator invites the first owner of a customer (or any
user) into the customer zone, or every contract's owner contact at once (``--owners``,
after ``billing contracts load``). The invitation is a one-time link e-mailed by the zone
worker; the action is in the operators' audit trail (``billing audit log``) and in the
zone's own audit log, in the transaction that makes the link."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg

from schemas import contacts
from services.runtime import audit, db
from services.runtime.errors import BadInput, UsageError
from services.runtime.settings import get_settings
from services.zone import domain, service
from services.zone.service import Link, Q
from services.zone.settings import ZoneSettings
from services.zone.web import email_link


async def _invite(
    conn: asyncpg.Connection,
    settings: ZoneSettings,
    operator: str,
    now: Any,
    contract: str,
    email: str,
    owner: bool,
    rights: tuple[str, ...],
    language: str,
) -> None:
    async with conn.transaction():
        link = Link("invite", email, contract, owner, domain.RIGHTS if owner else rights)
        customer = await conn.fetchrow(Q.customer, contract)
        name = customer["customer_name"] if customer else contract
        await email_link(
            conn, settings, now, link, language, inviter=settings.company_name, customer=name
        )
        details: dict[str, Any] = {"email": email, "owner": owner, "rights": list(link.rights)}
        await audit.record(conn, now, operator, "zone_invite", contract, details)
        await service.record(
            conn,
            now,
            f"operator:{operator}",
            "invited",
            contract,
            subject=email,
            owner=owner,
            rights=list(link.rights),
        )


def cmd_zone_invite(args: argparse.Namespace) -> None:
    settings = get_settings(ZoneSettings)
    operator = audit.operator_name(args.operator)
    if args.owners == (args.contract is not None):
        raise UsageError("name a CONTRACT and EMAIL, or --owners for every owner contact")

    async def go() -> list[tuple[str, str]]:
        async with db.command_session(settings, "zone") as (conn, now):
            if args.owners:
                rows = await conn.fetch(Q.owners_to_invite, now)
                for r in rows:
                    await _invite(
                        conn,
                        settings,
                        operator,
                        now,
                        r["contract"],
                        r["email"],
                        True,
                        (),
                        r["language"],
                    )
                return [(r["contract"], r["email"]) for r in rows]
            if args.email is None:
                raise UsageError("an EMAIL to invite is needed after the CONTRACT")
            try:
                email = contacts.email_address(args.email).lower()
                rights = domain.parse_rights((args.rights or "").split(","))
            except ValueError as exc:
                raise BadInput(str(exc)) from None
            customer = await conn.fetchrow(Q.customer, args.contract)
            if customer is None:
                raise audit.UnknownContract(args.contract, "the zone")
            owner = not args.rights
            if owner:
                taken = await conn.fetchval(Q.owner_login_of, args.contract)
                if taken is not None and taken != email:
                    raise BadInput(
                        f"contract {args.contract} is owned in the zone by {taken}: invite "
                        "this person with --rights, or reset that owner's password"
                    )
            language = args.language or customer["language"]
            await _invite(
                conn, settings, operator, now, args.contract, email, owner, rights, language
            )
            return [(args.contract, email)]

    invited = asyncio.run(go())
    for contract, email in invited:
        print(f"invited {email} to contract {contract}")
    if not invited:
        print("nobody to invite: every owner contact has a login or a live invitation")


def register(sub: Any) -> None:
    zone = sub.add_parser("zone", help="the customer zone").add_subparsers(
        dest="sub", required=True
    )
    invite = zone.add_parser(
        "invite",
        help="e-mail a one-time link into the customer zone (audited)",
        description="Without --rights the person is invited as the customer's owner "
        "(every right). --owners invites every contract's owner contact on record that "
        "has no login and no live invitation yet.",
    )
    invite.add_argument("contract", nargs="?", help="the customer (contract number)")
    invite.add_argument("email", nargs="?", help="whom to invite")
    invite.add_argument(
        "--rights", help=f"a user's rights, comma-separated: {', '.join(domain.RIGHTS)}"
    )
    invite.add_argument(
        "--language", help="of the e-mail: cs, sk, hu, en (default: the contract's)"
    )
    invite.add_argument("--owners", action="store_true", help="every owner contact at once")
    invite.add_argument("--operator", help=audit.OPERATOR_HELP)
    invite.set_defaults(fn=cmd_zone_invite)
