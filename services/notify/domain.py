"""Who receives a message, in what language, when an SMS may go out, and what a failure
means. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

KIND_CATEGORY = {
    "reminder": "dunning",
    "notice": "dunning",
    "suspend": "dunning",
    "restrict": "dunning",
    "restore": "dunning",
    # documents go to the contacts subscribed to billing (the invoice category), not to
    # dunning-only contacts nor, as dunning does, to the owner regardless
    "invoice": "billing",
    "credit_note": "billing",
    # a prepaid VoIP balance low or exhausted (voip's announcements)
    "voip_credit_low": "billing",
    "voip_credit_exhausted": "billing",
}
# Messages about the state of access also go to the contacts of the "access" category (the
# customer zone's "service and access", docs/zone.md#contacts), reminders do not.
ACCESS_KINDS = frozenset({"notice", "suspend", "restrict", "restore"})


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
    """Contacts subscribed to the message's category (or, for a message about access, to
    "access"), plus the account owner, who always gets dunning messages; one message per
    address and channel."""
    category = KIND_CATEGORY.get(kind, "billing")
    out: list[Recipient] = []
    seen: set[tuple[str, str]] = set()
    for c in contacts:
        wanted = category in c.categories or (kind in ACCESS_KINDS and "access" in c.categories)
        if not (wanted or (c.owner and category == "dunning")):
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


# --- quiet hours -----------------------------------------------------------------------------

TIMEZONES = {"CZ": "Europe/Prague", "SK": "Europe/Bratislava", "HU": "Europe/Budapest"}


@dataclass(frozen=True)
class QuietHours:
    """A nightly window, in the customer's local time, when no SMS goes out."""

    start: time  # e.g. 20:00
    end: time  # e.g. 08:00 (the next morning when end <= start)

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """``"20:00-08:00"``; raises ValueError naming what is wrong."""
        try:
            a, b = (part.strip() for part in text.split("-"))
            return cls(time.fromisoformat(a), time.fromisoformat(b))
        except ValueError:
            raise ValueError(f"quiet hours {text!r}: expected HH:MM-HH:MM") from None

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def sms_send_at(now: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    """When an SMS may go out: now, or the end of the quiet window it falls into (in the
    customer's time zone, so daylight-saving changes land on the right hour)."""
    local = now.astimezone(zone)
    if not quiet.contains(local.time().replace(tzinfo=None)):
        return now
    day = local.date()
    if quiet.start > quiet.end and local.time().replace(tzinfo=None) >= quiet.start:
        day = day + timedelta(days=1)
    return datetime.combine(day, quiet.end, zone).astimezone(now.tzinfo)


def zone_for(country: str | None) -> ZoneInfo:
    return ZoneInfo(TIMEZONES.get(country or "CZ", "Europe/Prague"))


# --- what a failure means ----------------------------------------------------------------------


def http_failure_is_permanent(status: int | None) -> bool:
    """A gateway's 4xx is final (bad number, bad credentials), except timeouts and rate
    limits; 5xx and network errors are worth a retry."""
    return status is not None and 400 <= status < 500 and status not in (408, 425, 429)
