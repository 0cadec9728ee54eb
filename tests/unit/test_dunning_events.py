"""The table of dunning's events: each kind of action the domain decides has one row, an
event type the registry knows on the dunning topic, built into that type's model."""

from datetime import UTC, date, datetime
from typing import get_args

import pytest

from schemas import events as ev
from schemas.registry import TOPIC_EVENTS, type_of
from services.dunning.domain import Action, ActionKind, Decision, UnpaidInvoice
from services.dunning.policy import presets
from services.dunning.service import EVENTS, Acting

NOW = datetime(2027, 1, 7, 9, 0, tzinfo=UTC)
INV = UnpaidInvoice("2026000002", "1002", "2026000002", date(2026, 12, 15), 49900, "CZK")
DECISION = Decision(
    stage="suspended",
    episode=INV.invoice_number,
    acknowledged_at=datetime(2026, 12, 28, 9, 0, tzinfo=UTC),
    actions=(),
    next_check_at=None,
    overdue=(INV,),
    overdue_minor=49900,
    currency="CZK",
    why="test",
)


def acting(kind: ActionKind, **action: object) -> Acting:
    return Acting(
        contract="1002",
        policy=presets()["notice-then-suspend"],
        decision=DECISION,
        action=Action(kind=kind, step=kind, request_id=f"{kind}@x", **action),  # type: ignore[arg-type]
        currency="CZK",
        account="2001234567/2010",
        promise_days=5,
        now=NOW,
    )


def test_every_action_kind_but_skip_has_an_event() -> None:
    assert set(EVENTS) == set(get_args(ActionKind)) - {"skip"}


@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_each_row_builds_its_registered_event_on_the_dunning_topic(kind: ActionKind) -> None:
    data = EVENTS[kind](acting(kind, amount_minor=5000, invoice=INV.invoice_number))
    assert type_of(type(data)) in TOPIC_EVENTS["dunning"]
    assert data.model_dump()["contract"] == "1002"


def test_requests_carry_what_is_owed_and_their_kind_s_own_fields() -> None:
    notice = EVENTS["notice"](acting("notice"))
    assert isinstance(notice, ev.NoticeRequested)
    assert (notice.promise_max_days, notice.account, notice.overdue_minor) == (
        5,
        "2001234567/2010",
        49900,
    )
    assert [i.invoice_number for i in notice.invoices] == [INV.invoice_number]
    reminder = EVENTS["reminder"](acting("reminder", channels=("email", "sms")))
    assert isinstance(reminder, ev.ReminderRequested) and reminder.channels == ["email", "sms"]
    suspend = EVENTS["suspend"](acting("suspend"))
    assert isinstance(suspend, ev.SuspendRequested)
    assert suspend.acknowledged_at == DECISION.acknowledged_at
    fee = EVENTS["fee"](acting("fee", amount_minor=5000, invoice=INV.invoice_number))
    assert isinstance(fee, ev.FeeCharged)
    assert (fee.amount_minor, fee.invoice_number) == (5000, INV.invoice_number)
