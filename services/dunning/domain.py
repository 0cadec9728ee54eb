"""The dunning decision: ``decide(facts, policy, now) -> Decision``.

Recomputed from facts on every relevant event and timer (DESIGN section 6), so applying
the same facts twice changes nothing. Deadlines are anchored on the due date of the oldest
invoice still unpaid: a partial payment leaves that invoice unpaid and cannot skip a stage
(Kill Bill issue 2297). After downtime only the highest step that applies now is acted on;
the steps it overtook are recorded as skipped, so a worker back after three days sends one
reminder, not three.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from services.dunning.policy import Policy, Step

Stage = Literal["active", "notice", "suspended"]
ActionKind = Literal["reminder", "notice", "suspend", "restore", "skip"]

TIMEZONES = {
    "CZ": ZoneInfo("Europe/Prague"),
    "SK": ZoneInfo("Europe/Bratislava"),
    "HU": ZoneInfo("Europe/Budapest"),
}


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


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    step: str
    request_id: str
    channels: tuple[str, ...] = ()


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


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=tz)


def _restore_id(episode: str | None, done: frozenset[str]) -> str:
    base = f"restore@{episode or 'none'}"
    candidate, n = base, 1
    while candidate in done:
        n += 1
        candidate = f"{base}#{n}"
    return candidate


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
        next_check = _local_midnight(unpaid[0].due_on + timedelta(days=1), tz) if unpaid else None
        if facts.stage != "active":
            restore = Action("restore", "restore", _restore_id(facts.episode, facts.done))
            return Decision(
                "active",
                None,
                None,
                (restore,),
                next_check,
                (),
                0,
                currency,
                "nothing overdue any more: restore access",
            )
        return Decision("active", None, None, (), next_check, (), 0, currency, "nothing overdue")

    anchor = overdue[0]
    days_overdue = (today - anchor.due_on).days
    notice_done = any(
        s.action == "notice" and f"{s.name}@{anchor.invoice_number}" in facts.done
        for s in policy.steps
    ) or facts.stage in ("notice", "suspended")

    def reached(step: Step) -> bool:
        if step.action == "suspend":
            return (
                notice_done
                and not facts.exempt
                and facts.acknowledged_at is not None
                and step.after_acknowledged_days is not None
                and now >= facts.acknowledged_at + timedelta(days=step.after_acknowledged_days)
            )
        if facts.exempt and step.action == "notice":
            return False
        threshold = step.min_overdue_minor.get(currency or "", 0)
        return (
            step.after_days is not None
            and days_overdue >= step.after_days
            and overdue_minor >= threshold
        )

    def request_id(step: Step) -> str:
        return f"{step.name}@{anchor.invoice_number}"

    reached_steps = [s for s in policy.steps if reached(s)]
    actions: list[Action] = []
    stage: Stage = facts.stage
    episode = facts.episode
    if reached_steps:
        top = reached_steps[-1]
        for step in reached_steps[:-1]:
            if request_id(step) not in facts.done:
                actions.append(Action("skip", step.name, request_id(step)))
        if request_id(top) not in facts.done and not _stage_covers(stage, top.action):
            actions.append(Action(top.action, top.name, request_id(top), tuple(top.channels)))
            if top.action == "notice":
                stage, episode = "notice", anchor.invoice_number
            elif top.action == "suspend":
                stage = "suspended"

    pending: list[datetime] = []
    for step in policy.steps:
        if step in reached_steps:
            continue
        if step.after_days is not None:
            pending.append(_local_midnight(anchor.due_on + timedelta(days=step.after_days), tz))
        elif facts.acknowledged_at is not None and step.after_acknowledged_days is not None:
            pending.append(facts.acknowledged_at + timedelta(days=step.after_acknowledged_days))
    next_check = min((p for p in pending if p > now), default=None)
    why = (
        f"invoice {anchor.invoice_number} is {days_overdue} days overdue"
        f" ({overdue_minor} {currency} open in {len(overdue)} invoice(s));"
        f" steps reached: {', '.join(s.name for s in reached_steps) or 'none'}"
    )
    return Decision(
        stage,
        episode,
        facts.acknowledged_at,
        tuple(actions),
        next_check,
        overdue,
        overdue_minor,
        currency,
        why,
    )


def _stage_covers(stage: Stage, action: str) -> bool:
    """A stage already at or beyond what the action asks for needs no second request."""
    order = {"active": 0, "notice": 1, "suspended": 2}
    wanted = {"notice": 1, "suspend": 2}.get(action)
    return wanted is not None and order[stage] >= wanted
