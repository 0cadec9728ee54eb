"""The dunning decision: ``decide(facts, policy, now, tolerance) -> Decision``.

Recomputed from facts on every relevant event and timer (DESIGN section 6), so applying
the same facts twice changes nothing. Deadlines are anchored on the due date of the oldest
invoice still unpaid: a partial payment leaves that invoice unpaid and cannot skip a stage
(Kill Bill issue 2297). After downtime only the highest step that applies now is acted on;
the steps it overtook are recorded as skipped, so a worker back after three days sends one
reminder, not three. Fees are the exception: each invoice is charged once, whatever else
happened.

Fairness guards hold back the policy's guarded actions (suspend and restrict by default):
not on weekends or public holidays of the contract's country, not outside staffed hours,
not while a payment of the contract waits unmatched, not before a promise to pay runs out.
A held action is decided again at the next moment it would be allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

from services.dunning.policy import Policy, Step, staffed_window

Stage = Literal["active", "notice", "restricted", "suspended"]
ActionKind = Literal["reminder", "notice", "suspend", "restrict", "fee", "restore", "skip"]

TIMEZONES = {
    "CZ": ZoneInfo("Europe/Prague"),
    "SK": ZoneInfo("Europe/Bratislava"),
    "HU": ZoneInfo("Europe/Budapest"),
}
_RANK = {"active": 0, "notice": 1, "restricted": 1, "suspended": 2}


@dataclass(frozen=True)
class UnpaidInvoice:
    invoice_number: str
    vs: str
    ss: str
    due_on: date
    open_minor: int
    currency: str


@dataclass(frozen=True)
class Facts:
    contract: str
    country: str
    exempt: bool
    invoices: tuple[UnpaidInvoice, ...]
    stage: Stage
    episode: str | None  # invoice number that opened the current notice/suspension episode
    acknowledged_at: datetime | None
    done: frozenset[str]  # request ids already acted on (or skipped)
    noticed_at: datetime | None = None  # when the notice of this episode was requested
    promised_until: datetime | None = None  # customer's promise or operator's postponement
    unmatched_since: datetime | None = None  # a payment of the contract waits unmatched


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    step: str
    request_id: str
    channels: tuple[str, ...] = ()
    amount_minor: int = 0  # fees
    invoice: str | None = None  # fees: the late invoice


@dataclass(frozen=True)
class Upcoming:
    step: str
    action: str
    at: datetime


@dataclass(frozen=True)
class Decision:
    stage: Stage
    episode: str | None
    acknowledged_at: datetime | None
    actions: tuple[Action, ...]
    next_check_at: datetime | None
    overdue: tuple[UnpaidInvoice, ...]
    overdue_minor: int
    currency: str | None
    why: str
    held: str | None = None
    upcoming: tuple[Upcoming, ...] = field(default=())


# --- calendar ----------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _holidays(country: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, years=year).keys())


def is_holiday(country: str, day: date) -> bool:
    return day in _holidays(country, day.year)


def is_working_day(country: str, day: date) -> bool:
    return day.weekday() < 5 and not is_holiday(country, day)


def add_working_days(country: str, start: date, n: int) -> date:
    """The day on which ``n`` full working days after ``start`` have passed."""
    day, left = start, n
    while left > 0:
        day += timedelta(days=1)
        if is_working_day(country, day):
            left -= 1
    return day


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=tz)


# --- guards --------------------------------------------------------------------------------


def hold(facts: Facts, policy: Policy, action: str, now: datetime) -> tuple[str, datetime] | None:
    """Why ``action`` may not happen at ``now``, and the next moment to look again."""
    g = policy.guards
    if action not in g.actions:
        return None
    tz = TIMEZONES.get(facts.country, TIMEZONES["CZ"])
    if (
        facts.promised_until is not None
        and now < facts.promised_until
        and action
        in (
            "suspend",
            "restrict",
        )
    ):
        return f"postponed until {facts.promised_until.isoformat()}", facts.promised_until
    if facts.unmatched_since is not None and g.unmatched_hold_days:
        until = facts.unmatched_since + timedelta(days=g.unmatched_hold_days)
        if now < until:
            return "a payment of the contract waits unmatched", until
    allowed = next_allowed(facts.country, policy, now, tz)
    if allowed > now:
        local = now.astimezone(tz)
        if g.weekends and local.weekday() >= 5:
            why = "weekend"
        elif g.holidays and is_holiday(facts.country, local.date()):
            why = "public holiday"
        else:
            why = "outside staffed hours"
        return why, allowed
    return None


def next_allowed(country: str, policy: Policy, now: datetime, tz: ZoneInfo) -> datetime:
    """The first moment from ``now`` on a day and hour the guards allow."""
    g = policy.guards
    hours = g.hours_for(country)
    window = staffed_window(hours) if hours else (time(0, 0), time.max)
    local = now.astimezone(tz)
    for offset in range(0, 60):
        day = local.date() + timedelta(days=offset)
        if g.weekends and day.weekday() >= 5:
            continue
        if g.holidays and is_holiday(country, day):
            continue
        start = datetime.combine(day, window[0], tzinfo=tz)
        end = datetime.combine(day, window[1], tzinfo=tz)
        if offset == 0 and local >= end:
            continue
        return max(start, now)
    return now  # a policy whose guards never allow anything: do not wait forever


# --- the decision ---------------------------------------------------------------------------


def step_due(step: Step, invoice: UnpaidInvoice, facts: Facts, tz: ZoneInfo) -> datetime | None:
    """When ``step`` becomes due for ``invoice`` (None: not yet known)."""
    if step.after_days is not None:
        return _midnight(invoice.due_on + timedelta(days=step.after_days), tz)
    if step.after_working_days is not None:
        return _midnight(
            add_working_days(facts.country, invoice.due_on, step.after_working_days), tz
        )
    if step.after_month_end:
        first = (invoice.due_on.replace(day=1) + timedelta(days=32)).replace(day=1)
        return _midnight(first, tz)
    times = []
    if facts.acknowledged_at is not None and step.after_acknowledged_days is not None:
        times.append(facts.acknowledged_at + timedelta(days=step.after_acknowledged_days))
    if facts.noticed_at is not None and step.deadline_days is not None:
        times.append(facts.noticed_at + timedelta(days=step.deadline_days))
    return min(times) if times else None


def _next_id(base: str, done: frozenset[str]) -> str:
    candidate, n = base, 1
    while candidate in done:
        n += 1
        candidate = f"{base}#{n}"
    return candidate


def _restore_id(episode: str | None, done: frozenset[str]) -> str:
    return _next_id(f"restore@{episode or 'none'}", done)


def decide(facts: Facts, policy: Policy, now: datetime, tolerance: int) -> Decision:
    tz = TIMEZONES.get(facts.country, TIMEZONES["CZ"])
    today = now.astimezone(tz).date()
    unpaid = sorted(
        (i for i in facts.invoices if i.open_minor > tolerance),
        key=lambda i: (i.due_on, i.invoice_number),
    )
    overdue = tuple(i for i in unpaid if i.due_on < today)
    currency = overdue[0].currency if overdue else (unpaid[0].currency if unpaid else None)
    overdue_minor = sum(i.open_minor for i in overdue if i.currency == currency)

    if not overdue:
        next_check = _midnight(unpaid[0].due_on + timedelta(days=1), tz) if unpaid else None
        if facts.stage != "active":
            restore = Action("restore", "restore", _restore_id(facts.episode, facts.done))
            return Decision(
                "active", None, None, (restore,), next_check, (), 0, currency,
                "nothing overdue any more: restore access",
            )  # fmt: skip
        return Decision("active", None, None, (), next_check, (), 0, currency, "nothing overdue")

    anchor = overdue[0]
    notice_done = facts.stage in ("notice", "suspended") or any(
        s.action == "notice" and f"{s.name}@{anchor.invoice_number}" in facts.done
        for s in policy.steps
    )

    def blocked(step: Step) -> bool:
        if facts.exempt and step.action in ("notice", "suspend", "restrict", "fee"):
            return True
        if step.action == "suspend" and not notice_done:
            return True
        if overdue_minor < step.min_overdue.get(currency or "", 0):
            return True
        return len(overdue) < step.min_invoices

    def rid(step: Step, invoice: UnpaidInvoice = anchor) -> str:
        return f"{step.name}@{invoice.invoice_number}"

    escalation = [s for s in policy.steps if s.action != "fee"]
    due_at = {s.name: step_due(s, anchor, facts, tz) for s in escalation}
    reached = [
        s for s in escalation if not blocked(s) and (t := due_at[s.name]) is not None and now >= t
    ]
    reached_names = {s.name for s in reached}  # names are unique (policy.py); a model's == is slow
    actions: list[Action] = []
    stage: Stage = facts.stage
    episode = facts.episode
    held: str | None = None
    pending: list[datetime] = []
    if reached:
        top = reached[-1]
        wanted = {"notice": "notice", "suspend": "suspended", "restrict": "restricted"}
        covered = top.action in wanted and _RANK[stage] >= _RANK[wanted[top.action]]
        request = rid(top)
        if request in facts.done and top.action in wanted and not covered:
            # Done once, then restored, and now unpaid again (a reversed payment): the
            # same escalation again, under a new request id.
            request = _next_id(request, facts.done)
        if request not in facts.done and not covered:
            stop = hold(facts, policy, top.action, now)
            if stop is not None:
                held = f"{top.name} held: {stop[0]}"
                pending.append(stop[1])
            else:
                for step in reached[:-1]:
                    if rid(step) not in facts.done:
                        actions.append(Action("skip", step.name, rid(step)))
                actions.append(Action(top.action, top.name, request, tuple(top.channels)))
                if top.action == "notice":
                    stage, episode = "notice", anchor.invoice_number
                elif top.action in ("suspend", "restrict"):
                    stage = wanted[top.action]  # type: ignore[assignment]
                    episode = episode or anchor.invoice_number

    if any(a.kind == "notice" for a in actions):
        # The notice goes out now, and the facts know of no notice of it yet: the steps
        # that count from the notice (a hard deadline) count from now, or nothing would
        # check them again for a customer who never confirms it.
        due_at = {s.name: step_due(s, anchor, replace(facts, noticed_at=now), tz)
                  for s in escalation}  # fmt: skip

    # Fees: once per late invoice, not overtaken by escalation.
    for step in (s for s in policy.steps if s.action == "fee"):
        for inv in overdue:
            t = step_due(step, inv, facts, tz)
            if t is None or blocked(step) or rid(step, inv) in facts.done:
                continue
            if now >= t:
                amount = step.fee.get(inv.currency, 0)
                if amount:
                    actions.append(
                        Action("fee", step.name, rid(step, inv), (), amount, inv.invoice_number)
                    )
            else:
                pending.append(t)

    upcoming = []
    for s in escalation:
        t = due_at[s.name]
        if s.name in reached_names or t is None or (blocked(s) and s.action != "suspend"):
            continue
        pending.append(t)
        upcoming.append(Upcoming(s.name, s.action, t))
    next_check = min((p for p in pending if p > now), default=None)
    why = (
        f"invoice {anchor.invoice_number} is {(today - anchor.due_on).days} days overdue"
        f" ({overdue_minor} {currency} open in {len(overdue)} invoice(s));"
        f" steps reached: {', '.join(s.name for s in reached) or 'none'}"
        + (f"; {held}" if held else "")
    )
    return Decision(
        stage, episode, facts.acknowledged_at, tuple(actions), next_check, overdue,
        overdue_minor, currency, why, held, tuple(sorted(upcoming, key=lambda u: u.at)),
    )  # fmt: skip
