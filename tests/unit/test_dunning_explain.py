"""The explanation of a contract's dunning situation (``domain.explain``), the one
``billing dunning explain`` prints and ``dunning.status`` carries to the customer zone, and
the key that decides whether it changed (``domain.status_key``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from schemas import events as ev
from services.dunning.domain import (
    Facts,
    UnpaidInvoice,
    decide,
    explain,
    status_key,
)
from services.dunning.policy import Policy, presets

ISP = presets()["notice-then-suspend"]
DUE = date(2026, 12, 15)
INV = UnpaidInvoice("2026000002", "1002", "2026000002", DUE, 49900, "CZK")
BASE = Facts("1002", "CZ", False, (INV,), "active", None, None, frozenset())


def told(facts: Facts, now: datetime) -> tuple[ev.DunningStatus, str | None]:
    status = explain(facts, ISP, decide(facts, ISP, now, 0), "2001234561/2010", now)
    return status, status_key(status)


def test_explanation_names_why_what_next_and_what_to_pay() -> None:
    now = datetime(2026, 12, 19, 10, tzinfo=UTC)
    status, _ = told(replace(BASE, done=frozenset({"reminder-1@2026000002"})), now)
    assert status.stage == "active" and status.overdue_since == DUE
    assert [(s.step, s.action) for s in status.steps_reached] == [("reminder-1", "reminder")]
    assert [u.step for u in status.upcoming] == ["reminder-2", "notice"]
    assert status.upcoming[0].at.date() == date(2026, 12, 22)
    [inv] = status.invoices
    assert (inv.vs, inv.ss, inv.open_minor) == ("1002", "2026000002", 49900)
    assert (status.overdue_minor, status.account) == (49900, "2001234561/2010")


def test_key_changes_with_the_situation_not_with_the_clock() -> None:
    day = datetime(2026, 12, 19, 10, tzinfo=UTC)
    reminded = replace(BASE, done=frozenset({"reminder-1@2026000002"}))
    _, first = told(reminded, day)
    _, later = told(reminded, day + timedelta(hours=5))  # the same situation, later
    _, paid_part = told(replace(reminded, invoices=(replace(INV, open_minor=100),)), day)
    _, noticed = told(replace(reminded, stage="notice", episode="2026000002"), day)
    assert first is not None and first == later
    assert len({first, paid_part, noticed}) == 3


def test_nothing_overdue_has_no_key_so_a_good_payer_publishes_nothing() -> None:
    before_due = datetime(2026, 12, 10, 10, tzinfo=UTC)
    status, key = told(BASE, before_due)
    assert (status.stage, status.invoices, key) == ("active", [], None)
    # restored from a suspension: nothing overdue again, the key goes back to None
    _, after = told(replace(BASE, invoices=(), stage="suspended", episode="x"), before_due)
    assert after is None


def test_a_late_fee_charged_is_among_the_steps_reached() -> None:
    fees = Policy.model_validate(
        {
            "name": "fees",
            "guards": {"staffed_hours": ""},
            "steps": [
                {"name": "reminder-1", "action": "reminder", "after_days": 3},
                {"name": "fee", "action": "fee", "after_days": 5, "fee": {"CZK": 5000}},
            ],
        }
    )
    now = datetime(2026, 12, 21, 10, tzinfo=UTC)
    facts = replace(BASE, done=frozenset({"reminder-1@2026000002"}))
    charging = explain(facts, fees, decide(facts, fees, now, 0), "acc", now)
    charged_facts = replace(facts, done=facts.done | {"fee@2026000002"})
    charged = explain(charged_facts, fees, decide(charged_facts, fees, now, 0), "acc", now)
    for status in (charging, charged):
        assert [(r.step, r.action) for r in status.steps_reached] == [
            ("reminder-1", "reminder"),
            ("fee", "fee"),
        ]
    before = explain(
        facts, fees, decide(facts, fees, datetime(2026, 12, 19, tzinfo=UTC), 0), "a", now
    )
    assert [r.action for r in before.steps_reached] == ["reminder"]
