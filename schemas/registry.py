"""Which model validates the ``data`` of which event type, and on which topic it travels."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model

from schemas import events as ev
from schemas.envelope import CloudEvent, envelope

EVENT_TYPES: dict[str, type[BaseModel]] = {
    "contract.upserted.v1": ev.ContractUpserted,
    "invoice.issued.v1": ev.InvoiceIssued,
    "invoice.cancelled.v1": ev.InvoiceCancelled,
    "credit_note.issued.v1": ev.CreditNoteIssued,
    "document.ready.v1": ev.DocumentReady,
    "payment.received.v1": ev.PaymentReceived,
    "payment.matched.v1": ev.PaymentMatched,
    "payment.unmatched.v1": ev.PaymentUnmatched,
    "invoice.settled.v1": ev.InvoiceSettled,
    "invoice.partially_paid.v1": ev.InvoicePartiallyPaid,
    "invoice.reopened.v1": ev.InvoiceReopened,
    "payment.reversed.v1": ev.PaymentReversed,
    "reminder.requested.v1": ev.ReminderRequested,
    "notice.requested.v1": ev.NoticeRequested,
    "suspend.requested.v1": ev.SuspendRequested,
    "restrict.requested.v1": ev.RestrictRequested,
    "fee.charged.v1": ev.FeeCharged,
    "promise.made.v1": ev.PromiseMade,
    "restore.requested.v1": ev.RestoreRequested,
    "notice.acknowledged.v1": ev.NoticeAcknowledged,
    "network.access.v1": ev.NetworkAccess,
    "gear.applied.v1": ev.GearApplied,
    "notification.sent.v1": ev.NotificationSent,
    "notification.failed.v1": ev.NotificationFailed,
    "topup.requested.v1": ev.TopupRequested,
    "topup.invoiced.v1": ev.TopupInvoiced,
    "topup.refused.v1": ev.TopupRefused,
    "voip_credit.purchased.v1": ev.VoipCreditPurchased,
    "dunning.status.v1": ev.DunningStatus,
    "contacts.change_requested.v1": ev.ContactChangeRequested,
    "support.requested.v1": ev.SupportRequested,
    "bank_statement.imported.v1": ev.StatementImported,
    "traffic.counters.v1": ev.TrafficCounters,
    "traffic.hour.v1": ev.TrafficHour,
    "voip.calls_rated.v1": ev.CallsRated,
    "voip.credit_balance.v1": ev.VoipCreditBalance,
    "voip.credit_low.v1": ev.VoipCreditLow,
    "voip.credit_exhausted.v1": ev.VoipCreditExhausted,
}

# Topic setting name (see services.runtime.settings.Topics) -> event types it carries.
TOPIC_EVENTS: dict[str, list[str]] = {
    "contracts": ["contract.upserted.v1"],
    "invoices": ["invoice.issued.v1", "invoice.cancelled.v1", "credit_note.issued.v1"],
    "payments_received": ["payment.received.v1", "bank_statement.imported.v1"],
    "payments": [
        "payment.matched.v1",
        "payment.unmatched.v1",
        "invoice.settled.v1",
        "invoice.partially_paid.v1",
        "invoice.reopened.v1",
        "payment.reversed.v1",
    ],
    "dunning": [
        "reminder.requested.v1",
        "notice.requested.v1",
        "suspend.requested.v1",
        "restrict.requested.v1",
        "restore.requested.v1",
        "fee.charged.v1",
        "dunning.status.v1",
    ],
    "notices": ["notice.acknowledged.v1", "promise.made.v1"],
    "network_access": ["network.access.v1"],
    "network_applied": ["gear.applied.v1"],
    "notifications": ["notification.sent.v1", "notification.failed.v1"],
    "documents": ["document.ready.v1"],
    "topups": [
        "topup.requested.v1",
        "topup.invoiced.v1",
        "topup.refused.v1",
        "voip_credit.purchased.v1",
    ],
    "zone": ["contacts.change_requested.v1", "support.requested.v1"],
    "traffic_counters": ["traffic.counters.v1"],
    "traffic": ["traffic.hour.v1"],
    "voip": [
        "voip.calls_rated.v1",
        "voip.credit_balance.v1",
        "voip.credit_low.v1",
        "voip.credit_exhausted.v1",
    ],
}


# Each event model's type and the topic (its ``Topics`` setting name) it travels on: what
# ``Unit.emit(key, model)`` writes, and how handlers are registered (by model). Built from
# the two tables above, and refused at import if a model has two types or a type no topic
# or two.
def _routes() -> dict[type[BaseModel], tuple[str, str]]:
    topic_of = {t: topic for topic, types in TOPIC_EVENTS.items() for t in types}
    if sorted(topic_of) != sorted(t for types in TOPIC_EVENTS.values() for t in types):
        raise AssertionError("an event type is listed on two topics in TOPIC_EVENTS")
    if set(topic_of) != set(EVENT_TYPES):
        raise AssertionError(f"types without a topic: {sorted(set(EVENT_TYPES) - set(topic_of))}")
    if len(set(EVENT_TYPES.values())) != len(EVENT_TYPES):
        raise AssertionError("a model is the data of two event types in EVENT_TYPES")
    return {model: (t, topic_of[t]) for t, model in EVENT_TYPES.items()}


ROUTES: dict[type[BaseModel], tuple[str, str]] = _routes()


def type_of(model: type[BaseModel]) -> str:
    """The event type whose data ``model`` is (``ContractUpserted``: contract.upserted.v1)."""
    return ROUTES[model][0]


def event_of(source: str, subject: str | None, data: BaseModel, time: datetime) -> CloudEvent:
    """The envelope of ``data``, its type its model's: for a producer that writes to Kafka
    itself (a command, gear, the bench); services emit through ``Unit.emit``."""
    return envelope(type_of(type(data)), source, subject, data, time)


class PoisonMessage(ValueError):
    """A record that can never be processed; it goes to the topic's DLQ with this reason."""


def _typed_envelope(type_: str, model: type[BaseModel]) -> type[CloudEvent]:
    """The envelope of one event type, its ``data`` that type's model: a record parses in
    one pass over its JSON (in pydantic-core) instead of two, with no dict of the data
    built in between."""
    name = "CloudEvent_" + type_.replace(".", "_")
    fields: dict[str, Any] = {"type": (Literal[type_], ...), "data": (model, ...)}
    return create_model(name, __base__=CloudEvent, **fields)


# Every known type's envelope, chosen by ``type`` (a tagged union: one lookup, not a trial
# of each member).
_ONE_PASS: TypeAdapter[CloudEvent] = TypeAdapter(
    Annotated[  # type: ignore[arg-type]
        Union[tuple(_typed_envelope(t, m) for t, m in EVENT_TYPES.items())],  # noqa: UP007
        Field(discriminator="type"),
    ]
)


def parse(raw: bytes | None) -> tuple[CloudEvent, BaseModel]:
    """Parse a record value into its envelope and typed data, or raise PoisonMessage.

    A valid event of a known type parses in one pass; anything else goes through the
    envelope and then its data, so the reason names what is wrong in the same words."""
    if raw is None:
        raise PoisonMessage("record has no value (tombstone)")
    try:
        event = _ONE_PASS.validate_json(raw)
    except ValidationError:
        return _parse_in_two(raw)
    return event, event.data  # type: ignore[return-value]


def _parse_in_two(raw: bytes) -> tuple[CloudEvent, BaseModel]:
    try:
        event = CloudEvent.model_validate_json(raw)
    except ValidationError as exc:
        raise PoisonMessage(f"not a CloudEvent: {brief(exc)}") from None
    model = EVENT_TYPES.get(event.type)
    if model is None:
        raise PoisonMessage(f"unknown event type {event.type!r}")
    try:
        # validated as JSON, as the one pass does: strict contracts take ISO date strings
        # from JSON, and nothing else (schemas.events.ExternalData)
        data = model.model_validate_json(json.dumps(event.data))
    except ValidationError as exc:
        raise PoisonMessage(f"{event.type} data invalid: {brief(exc)}") from None
    return event, data


def brief(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
