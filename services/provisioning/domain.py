"""Access decisions: what a dunning request or a confirmation does to a contract's access.
Pure: the caller passes the current state and gets the new one (or None: no change)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AccessState = Literal["active", "notice", "restricted", "suspended"]
Request = Literal["notice", "suspend", "restrict", "restore", "acknowledged"]


@dataclass(frozen=True)
class Change:
    state: AccessState
    reason: str


def transition(current: AccessState, request: Request) -> Change | None:
    """The new access state, or None when the request changes nothing.

    A notice never downgrades a suspension; a confirmation only lifts a notice; restore
    always ends with full access."""
    if request == "notice":
        return None if current in ("notice", "suspended") else Change("notice", "payment notice")
    if request == "suspend":
        return None if current == "suspended" else Change("suspended", "unpaid after notice")
    if request == "restrict":
        return (
            None
            if current in ("restricted", "suspended")
            else Change("restricted", "unpaid after due date")
        )
    if request == "acknowledged":
        return Change("active", "notice acknowledged") if current == "notice" else None
    return None if current == "active" else Change("active", "payment received")


@dataclass(frozen=True)
class Access:
    state: AccessState
    reason: str
    version: int


def apply_requests(
    current: dict[str, Access], requests: list[tuple[str, Request]]
) -> tuple[dict[str, Access], list[tuple[str, Access]]]:
    """Requests applied in order to the contracts' current access: the access each contract
    ends with, and every change on the way (each a new version) in order. A contract not
    in ``current`` is unknown here and stays so."""
    now = dict(current)
    changes: list[tuple[str, Access]] = []
    for contract, request in requests:
        if contract not in now:
            continue
        change = transition(now[contract].state, request)
        if change is None:
            continue
        now[contract] = Access(change.state, change.reason, now[contract].version + 1)
        changes.append((contract, now[contract]))
    return now, changes


def form_token(key: bytes, contract: str, request_id: str, session: str) -> str:
    """The notice page's form token: an HMAC under the deployment's notice secret of the
    contract, the notice on screen and the browser's session cookie (SameSite=Strict, so a
    page of another site cannot make the browser send it). Without the secret it cannot be
    made; for another contract, an older notice or another browser it does not fit."""
    import hashlib
    import hmac

    msg = "\x00".join(("notice-form/v2", contract, request_id, session)).encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def cross_site(origin: str | None, fetch_site: str | None, hosts: frozenset[str]) -> bool:
    """Whether a form post comes from a page of another site: its ``Origin`` names a host
    other than this page's own (``hosts``: the Host it was asked for, the public URL's), or
    the browser's ``Sec-Fetch-Site`` says so. Browsers send ``Origin`` with every POST;
    a client that sends neither header is no browser following another site's form."""
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    if origin is None:
        return False
    scheme, sep, host = origin.partition("://")
    return not sep or scheme not in ("http", "https") or host.lower() not in hosts
