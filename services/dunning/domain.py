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

``decide`` runs in phases, each a function below: what is owed (``arrears``), then either
nothing overdue (``_settled``) or the escalation (``_escalate``), the fees (``_fees``) and
what comes next (``_upcoming``). ``judge_promise`` decides whether a customer's promise to
pay is accepted, and until when.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

from schemas import events as ev
from services.dunning.policy import Policy, Promise, Step, staffed_window

Stage = Literal["active", "notice", "restricted", "suspended"]
ActionKind = Literal["reminder", "notice", "suspend", "restrict", "fee", "restore", "skip"]

TIMEZONES = {
    "CZ": ZoneInfo("Europe/Prague"),
    "SK": ZoneInfo("Europe/Bratislava"),
    "HU": ZoneInfo("Europe/Budapest"),
}
_RANK = {"active": 0, "notice": 1, "restricted": 1, "suspended": 2}
# The stage an escalating action puts the contract in; reminders and fees change none.
_STAGE_OF: dict[str, Stage] = {"notice": "notice", "suspend": "suspended", "restrict": "restricted"}
# What a customer's promise postpones: the stages a promise can be made from, and the
# actions it holds back.
_POSTPONABLE_STAGES = ("notice", "suspended", "restricted")
_POSTPONED_ACTIONS = ("suspend", "restrict")


@dataclass(frozen=True)
class UnpaidInvoice:
    invoice_number: str
    vs: str
    ss: str
    due_on: date
    open_minor: int
    currency: str
    # A VoIP credit top-up's invoice: never dunned (unpaid, no credit; nothing more).
    topup: bool = False


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


@dataclass(frozen=True, kw_only=True)
class Action:
    kind: ActionKind
    step: str
    request_id: str
    channels: tuple[str, ...] = ()
    amount_minor: int = 0  # fees
    invoice: str | None = None  # fees: the late invoice


@dataclass(frozen=True, kw_only=True)
class Upcoming:
    step: str
    action: str
    at: datetime


@dataclass(frozen=True, kw_only=True)
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
    upcoming: tuple[Upcoming, ...] = ()
    reached: tuple[Upcoming, ...] = ()  # the escalation steps due by now, when each fell due


# --- calendar -----------------------------------------------------------------------------


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


def timezone_of(country: str) -> ZoneInfo:
    """The contract's local time: its days, holidays and staffed hours are counted in it."""
    return TIMEZONES.get(country, TIMEZONES["CZ"])


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=tz)


# --- guards -------------------------------------------------------------------------------
# Each guard answers why an action may not happen now and when to look again, or None.
# ``hold`` asks them in this order, so the reason given is the one that lasts longest in
# practice: a promise before an unmatched payment before the calendar.

Held = tuple[str, datetime]


def _promised(facts: Facts, policy: Policy, action: str, now: datetime) -> Held | None:
    until = facts.promised_until
    if until is not None and now < until and action in _POSTPONED_ACTIONS:
        return f"postponed until {until.isoformat()}", until
    return None


def _unmatched(facts: Facts, policy: Policy, action: str, now: datetime) -> Held | None:
    days = policy.guards.unmatched_hold_days
    if facts.unmatched_since is None or not days:
        return None
    until = facts.unmatched_since + timedelta(days=days)
    return ("a payment of the contract waits unmatched", until) if now < until else None


def _off_hours(facts: Facts, policy: Policy, action: str, now: datetime) -> Held | None:
    tz = timezone_of(facts.country)
    allowed = next_allowed(facts.country, policy, now, tz)
    if allowed <= now:
        return None
    g, local = policy.guards, now.astimezone(tz)
    if g.weekends and local.weekday() >= 5:
        return "weekend", allowed
    if g.holidays and is_holiday(facts.country, local.date()):
        return "public holiday", allowed
    return "outside staffed hours", allowed


_GUARDS: tuple[Callable[[Facts, Policy, str, datetime], Held | None], ...] = (
    _promised,
    _unmatched,
    _off_hours,
)


def hold(facts: Facts, policy: Policy, action: str, now: datetime) -> Held | None:
    """Why ``action`` may not happen at ``now``, and the next moment to look again."""
    if action not in policy.guards.actions:
        return None
    return next((h for guard in _GUARDS if (h := guard(facts, policy, action, now))), None)


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


# --- when a step falls due ----------------------------------------------------------------


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


def _rid(step: Step, invoice: UnpaidInvoice) -> str:
    """A step's request id: once per step and invoice, the key that makes acting idempotent."""
    return f"{step.name}@{invoice.invoice_number}"


# --- phase 1: what is owed ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Arrears:
    """The invoices still unpaid beyond the rounding tolerance, oldest due first, and the
    overdue ones among them with their sum in the currency of the oldest."""

    unpaid: tuple[UnpaidInvoice, ...]
    overdue: tuple[UnpaidInvoice, ...]
    currency: str | None
    overdue_minor: int


def arrears(facts: Facts, tolerance: int, today: date) -> Arrears:
    """Sorted by due date, so ``overdue[0]`` is the invoice every deadline is anchored on;
    a rest within ``tolerance`` is not owed (499.00 paid on a 499.40 invoice), nor is a
    VoIP credit top-up's invoice (unpaid, the customer only does not get the credit: no
    reminder, notice or suspension of internet access for it)."""
    unpaid = tuple(
        sorted(
            (i for i in facts.invoices if i.open_minor > tolerance and not i.topup),
            key=lambda i: (i.due_on, i.invoice_number),
        )
    )
    overdue = tuple(i for i in unpaid if i.due_on < today)
    oldest = (overdue or unpaid)[:1]
    currency = oldest[0].currency if oldest else None
    return Arrears(
        unpaid=unpaid,
        overdue=overdue,
        currency=currency,
        overdue_minor=sum(i.open_minor for i in overdue if i.currency == currency),
    )


# --- phase 2a: nothing overdue ------------------------------------------------------------


def _settled(facts: Facts, owed: Arrears, tz: ZoneInfo) -> Decision:
    """Nothing overdue: the contract is active, restored if it was not, and looked at again
    the day after its next invoice falls due."""
    next_check = _midnight(owed.unpaid[0].due_on + timedelta(days=1), tz) if owed.unpaid else None
    restoring = facts.stage != "active"
    restore = (
        Action(kind="restore", step="restore", request_id=_restore_id(facts.episode, facts.done)),
    )
    return Decision(
        stage="active",
        episode=None,
        acknowledged_at=None,
        actions=restore if restoring else (),
        next_check_at=next_check,
        overdue=(),
        overdue_minor=0,
        currency=owed.currency,
        why="nothing overdue any more: restore access" if restoring else "nothing overdue",
    )


# --- phase 2b: escalation -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Barriers:
    """What keeps a step from applying to this contract at all, whatever its date: an
    exemption, no notice yet before a suspension, too little or too few overdue."""

    exempt: bool
    notice_done: bool
    overdue_minor: int
    currency: str | None
    overdue_invoices: int

    def block(self, step: Step) -> bool:
        if self.exempt and step.action in ("notice", "suspend", "restrict", "fee"):
            return True
        if step.action == "suspend" and not self.notice_done:
            return True
        if self.overdue_minor < step.min_overdue.get(self.currency or "", 0):
            return True
        return self.overdue_invoices < step.min_invoices


def _barriers(facts: Facts, policy: Policy, owed: Arrears) -> _Barriers:
    """The notice counts as done when the contract is in notice (or beyond) or a notice
    step was acted on for the anchor invoice: no suspension without a notice first."""
    anchor = owed.overdue[0]
    notice_done = facts.stage in ("notice", "suspended") or any(
        s.action == "notice" and _rid(s, anchor) in facts.done for s in policy.steps
    )
    return _Barriers(
        exempt=facts.exempt,
        notice_done=notice_done,
        overdue_minor=owed.overdue_minor,
        currency=owed.currency,
        overdue_invoices=len(owed.overdue),
    )


@dataclass(frozen=True, kw_only=True)
class _Escalation:
    """The outcome of the escalation phase: the stage the contract is now in, and the
    actions taken (the highest step reached, the ones it overtook as skipped) or why the
    highest step is held and until when."""

    stage: Stage
    episode: str | None
    actions: tuple[Action, ...] = ()
    held: str | None = None
    held_until: datetime | None = None


def _reached(
    steps: list[Step], due_at: dict[str, datetime | None], bars: _Barriers, now: datetime
) -> list[Step]:
    """The escalation steps due by ``now`` and not barred, in policy order."""
    return [
        s for s in steps if not bars.block(s) and (t := due_at[s.name]) is not None and now >= t
    ]


def _request_for(top: Step, facts: Facts, anchor: UnpaidInvoice) -> str | None:
    """The request id to act on ``top`` under, or None when there is nothing to do: the
    contract is already at (or beyond) the stage the step leads to, or it was done."""
    wanted = _STAGE_OF.get(top.action)
    if wanted is not None and _RANK[facts.stage] >= _RANK[wanted]:
        return None
    request = _rid(top, anchor)
    if request in facts.done and wanted is not None:
        # Done once, then restored, and now unpaid again (a reversed payment): the
        # same escalation again, under a new request id.
        return _next_id(request, facts.done)
    return None if request in facts.done else request


def _entered(top: Step, facts: Facts, anchor: UnpaidInvoice) -> tuple[Stage, str | None]:
    """The stage and episode after acting on ``top``: a notice opens a new episode on the
    anchor invoice; a suspension or restriction keeps the episode it belongs to."""
    if top.action == "notice":
        return "notice", anchor.invoice_number
    if top.action in ("suspend", "restrict"):
        return _STAGE_OF[top.action], facts.episode or anchor.invoice_number
    return facts.stage, facts.episode


def _escalate(
    facts: Facts, policy: Policy, now: datetime, anchor: UnpaidInvoice, reached: list[Step]
) -> _Escalation:
    """Only the highest step reached is acted on (after downtime, one reminder and not
    three); the steps it overtook are recorded as skipped so they never fire late. A guard
    may hold the highest step: then nothing is done, not even the skips, until it may."""
    unchanged = _Escalation(stage=facts.stage, episode=facts.episode)
    if not reached:
        return unchanged
    top = reached[-1]
    request = _request_for(top, facts, anchor)
    if request is None:
        return unchanged
    stop = hold(facts, policy, top.action, now)
    if stop is not None:
        return replace(unchanged, held=f"{top.name} held: {stop[0]}", held_until=stop[1])
    skipped = tuple(
        Action(kind="skip", step=s.name, request_id=_rid(s, anchor))
        for s in reached[:-1]
        if _rid(s, anchor) not in facts.done
    )
    acted = Action(kind=top.action, step=top.name, request_id=request, channels=tuple(top.channels))
    stage, episode = _entered(top, facts, anchor)
    return _Escalation(stage=stage, episode=episode, actions=(*skipped, acted))


# --- phase 3: fees ------------------------------------------------------------------------


def _fees(
    facts: Facts, policy: Policy, now: datetime, owed: Arrears, bars: _Barriers, tz: ZoneInfo
) -> tuple[tuple[Action, ...], tuple[datetime, ...]]:
    """Fees are charged once per late invoice and never overtaken by escalation, unlike
    every other step. Returns the fees due now and the times later ones fall due."""
    charged: list[Action] = []
    later: list[datetime] = []
    for step in (s for s in policy.steps if s.action == "fee" and not bars.block(s)):
        for inv in owed.overdue:
            t = step_due(step, inv, facts, tz)
            if t is None or _rid(step, inv) in facts.done:
                continue
            if now < t:
                later.append(t)
            elif amount := step.fee.get(inv.currency, 0):
                charged.append(
                    Action(kind="fee", step=step.name, request_id=_rid(step, inv),
                           amount_minor=amount, invoice=inv.invoice_number)
                )  # fmt: skip
    return tuple(charged), tuple(later)


# --- phase 4: what comes next -------------------------------------------------------------


def _upcoming(
    steps: list[Step], due_at: dict[str, datetime | None], reached: list[Step], bars: _Barriers
) -> tuple[Upcoming, ...]:
    """The escalation steps not reached yet with a known date, soonest first. A barred
    suspension is listed all the same (most often it waits for a notice, perhaps the one
    just sent): its date is still a moment to look again."""
    names = {s.name for s in reached}  # names are unique (policy.py); a model's == is slow
    coming = [
        Upcoming(step=s.name, action=s.action, at=t)
        for s in steps
        if s.name not in names
        and (t := due_at[s.name]) is not None
        and not (bars.block(s) and s.action != "suspend")
    ]
    return tuple(sorted(coming, key=lambda u: u.at))


def _why(owed: Arrears, today: date, reached: list[Step], held: str | None) -> str:
    anchor = owed.overdue[0]
    return (
        f"invoice {anchor.invoice_number} is {(today - anchor.due_on).days} days overdue"
        f" ({owed.overdue_minor} {owed.currency} open in {len(owed.overdue)} invoice(s));"
        f" steps reached: {', '.join(s.name for s in reached) or 'none'}"
        + (f"; {held}" if held else "")
    )


# --- the decision -------------------------------------------------------------------------


def decide(facts: Facts, policy: Policy, now: datetime, tolerance: int) -> Decision:
    """The state the contract should be in at ``now``, what to do to get there, and when to
    look again, in phases: what is owed; nothing overdue, or the escalation, the fees and
    the steps to come. The order matters: a notice sent in this decision starts the clock
    of the steps that count from the notice, so those are dated after the escalation."""
    tz = timezone_of(facts.country)
    today = now.astimezone(tz).date()
    owed = arrears(facts, tolerance, today)
    if not owed.overdue:
        return _settled(facts, owed, tz)
    anchor = owed.overdue[0]
    bars = _barriers(facts, policy, owed)
    steps = [s for s in policy.steps if s.action != "fee"]
    due_at = {s.name: step_due(s, anchor, facts, tz) for s in steps}
    reached = _reached(steps, due_at, bars, now)
    escalation = _escalate(facts, policy, now, anchor, reached)
    if any(a.kind == "notice" for a in escalation.actions):
        # The notice goes out now, and the facts know of no notice of it yet: the steps
        # that count from the notice (a hard deadline) count from now, or nothing would
        # check them again for a customer who never confirms it.
        noticed = replace(facts, noticed_at=now)
        due_at = {s.name: step_due(s, anchor, noticed, tz) for s in steps}
    fees, fees_later = _fees(facts, policy, now, owed, bars, tz)
    upcoming = _upcoming(steps, due_at, reached, bars)
    pending = [*fees_later, *(u.at for u in upcoming)]
    if escalation.held_until is not None:
        pending.append(escalation.held_until)
    return Decision(
        stage=escalation.stage,
        episode=escalation.episode,
        acknowledged_at=facts.acknowledged_at,
        actions=(*escalation.actions, *fees),
        next_check_at=min((p for p in pending if p > now), default=None),
        overdue=owed.overdue,
        overdue_minor=owed.overdue_minor,
        currency=owed.currency,
        why=_why(owed, today, reached, escalation.held),
        held=escalation.held,
        upcoming=upcoming,
        reached=tuple(
            Upcoming(step=s.name, action=s.action, at=t)
            for s in reached
            if (t := due_at[s.name]) is not None
        ),
    )


# --- the explanation ----------------------------------------------------------------------


def explain(
    facts: Facts, policy: Policy, decision: Decision, account: str, now: datetime
) -> ev.DunningStatus:
    """A contract's dunning situation as operators (``billing dunning explain``) and the
    customer (the zone, through the ``dunning.status`` event) are told it: the stage, why
    (the overdue invoices, their sum, since when), the steps reached and what comes next
    and when, and what to pay to end it (each overdue invoice's open amount, VS and SS, to
    ``account``). One function for both, so the two cannot tell different stories."""
    return ev.DunningStatus(
        contract=facts.contract,
        stage=decision.stage,
        policy=policy.name,
        exempt=facts.exempt,
        overdue_since=decision.overdue[0].due_on if decision.overdue else None,
        overdue_minor=decision.overdue_minor,
        currency=decision.currency,
        invoices=overdue_invoices(decision),
        steps_reached=[
            ev.UpcomingStep(action=u.action, step=u.step, at=u.at)
            for u in (*decision.reached, *_fees_charged(facts, policy, decision))
        ],
        upcoming=[
            ev.UpcomingStep(action=u.action, step=u.step, at=u.at) for u in decision.upcoming
        ],
        held=decision.held,
        promised_until=(
            facts.promised_until
            if facts.promised_until is not None and facts.promised_until > now
            else None
        ),
        acknowledged_at=decision.acknowledged_at,
        account=account,
        decided_at=now,
    )


def _fees_charged(facts: Facts, policy: Policy, decision: Decision) -> list[Upcoming]:
    """The late fees charged on the overdue invoices (before, or in this decision), each
    at the moment it fell due."""
    now_charged = {a.request_id for a in decision.actions if a.kind == "fee"}
    tz = timezone_of(facts.country)
    return [
        Upcoming(step=step.name, action="fee", at=t)
        for step in policy.steps
        if step.action == "fee"
        for inv in decision.overdue
        if (_rid(step, inv) in facts.done or _rid(step, inv) in now_charged)
        and (t := step_due(step, inv, facts, tz)) is not None
    ]


def explains(stage: Stage, overdue: Sequence[object]) -> bool:
    """Whether a contract in ``stage`` with these overdue invoices has anything to be
    explained: not when it is active with nothing overdue (the common case, decided
    without building an explanation)."""
    return stage != "active" or bool(overdue)


def status_key(status: ev.DunningStatus) -> str | None:
    """What makes one explanation differ from another for the customer: everything but
    the moment it was decided. None for a contract with nothing overdue in the active
    stage (nothing to explain: a contract never in arrears publishes nothing)."""
    if not explains(status.stage, status.invoices):
        return None
    text = status.model_dump_json(exclude={"decided_at"})
    return hashlib.sha256(text.encode()).hexdigest()


# --- promises to pay ----------------------------------------------------------------------


def promise_allowance(
    promise: Promise, last_customer_promise: datetime | None, now: datetime
) -> int:
    """How many days a customer may still postpone: the policy's ``max_days``, or 0 when it
    allows no promise or the customer's last accepted one is within ``once_per_days``."""
    if not promise.max_days:
        return 0
    if last_customer_promise is not None and now - last_customer_promise < timedelta(
        days=promise.once_per_days
    ):
        return 0
    return promise.max_days


@dataclass(frozen=True, kw_only=True)
class PromiseVerdict:
    """Whether a promise is accepted, the moment it postpones to, and a note for the
    customer and the operator (why refused, or that it was shortened)."""

    accepted: bool
    until: datetime
    note: str = ""


def judge_promise(
    facts: Facts,
    policy: Policy,
    now: datetime,
    tolerance: int,
    *,
    by: Literal["customer", "operator"],
    days: int | None = None,
    until: datetime | None = None,
    last_customer_promise: datetime | None = None,
) -> PromiseVerdict:
    """A promise to pay postpones the suspension (or restriction) from when it would come,
    or from the end of a promise already running, whichever is later. An operator's is
    accepted as given (``until``, else that moment). A customer's asks for ``days``: within
    the policy's allowance (shortened to it, with a note), refused when the policy allows
    none now or there is nothing to postpone (the contract is not in notice or beyond)."""
    planned = decide(facts, policy, now, tolerance).upcoming
    base = next((u.at for u in planned if u.action in _POSTPONED_ACTIONS), now)
    base = max(base, facts.promised_until or base)
    if by == "operator":
        return PromiseVerdict(accepted=True, until=until or base)
    allowed = promise_allowance(policy.promise, last_customer_promise, now)
    postponed = base + timedelta(days=min(days or allowed, allowed))
    if not allowed:
        return PromiseVerdict(
            accepted=False, until=postponed, note="no promise allowed now by the policy"
        )
    if facts.stage not in _POSTPONABLE_STAGES:
        return PromiseVerdict(accepted=False, until=postponed, note="nothing to postpone")
    shortened = (days or 0) > allowed
    note = f"shortened to the policy's {allowed} days" if shortened else ""
    return PromiseVerdict(accepted=True, until=postponed, note=note)


def overdue_invoices(decision: Decision) -> list[ev.OverdueInvoice]:
    """The decision's overdue invoices as events carry them (a request to act, the
    status), oldest first."""
    return [
        ev.OverdueInvoice(
            invoice_number=i.invoice_number,
            vs=i.vs,
            ss=i.ss,
            due_on=i.due_on,
            open_minor=i.open_minor,
            currency=i.currency,
        )
        for i in decision.overdue
    ]
