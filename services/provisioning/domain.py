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


def csrf_token(secret: str, contract: str, address: str, request_id: str) -> str:
    import hashlib
    import hmac

    msg = f"{contract}|{address}|{request_id}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()
