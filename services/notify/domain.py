"""Who receives a dunning message and in what language. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

KIND_CATEGORY = {
    "reminder": "dunning",
    "notice": "dunning",
    "suspend": "dunning",
    "restore": "dunning",
}


@dataclass(frozen=True)
class ContactInfo:
    name: str
    email: str | None
    phone: str | None
    language: str
    categories: tuple[str, ...]
    owner: bool


@dataclass(frozen=True)
class Recipient:
    channel: str
    address: str
    language: str


def recipients(
    kind: str, contacts: list[ContactInfo], channels: tuple[str, ...]
) -> list[Recipient]:
    """Contacts subscribed to the message's category, plus the account owner, who always
    gets dunning messages; one message per address and channel."""
    category = KIND_CATEGORY.get(kind, "billing")
    out: list[Recipient] = []
    seen: set[tuple[str, str]] = set()
    for c in contacts:
        if not (category in c.categories or (c.owner and category == "dunning")):
            continue
        for channel in channels:
            address = c.email if channel == "email" else c.phone
            if address and (channel, address) not in seen:
                seen.add((channel, address))
                out.append(Recipient(channel, address, c.language))
    return out


def backoff(attempts: int, base_seconds: float) -> timedelta:
    """Delay before the next try after ``attempts`` failures: base, 2x, 4x ... capped at 1 h."""
    return timedelta(seconds=min(base_seconds * (2 ** max(0, attempts - 1)), 3600.0))
