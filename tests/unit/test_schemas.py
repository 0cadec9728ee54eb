import json

import pytest

from schemas import generate
from schemas.registry import EVENT_TYPES, PoisonMessage, parse


def test_generated_json_schema_is_up_to_date() -> None:
    for path, text in generate.render().items():
        assert path.exists(), f"{path} missing: run `make schemas`"
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run `make schemas`"


def test_every_event_type_has_a_topic() -> None:
    from schemas.registry import TOPIC_EVENTS

    routed = {t for types in TOPIC_EVENTS.values() for t in types}
    assert routed == set(EVENT_TYPES)


PAYMENT = {
    "specversion": "1.0",
    "id": "5f0c8a53-8f1e-4b55-9d55-0f6f1f6b0e01",
    "source": "/importers/gpc",
    "type": "payment.received.v1",
    "time": "2026-12-10T08:00:00Z",
    "subject": "1002",
    "datacontenttype": "application/json",
    "data": {
        "account": "2001234567/2010",
        "bank_tx_id": "123",
        "booked_on": "2026-12-10",
        "value_on": "2026-12-10",
        "amount_minor": 49900,
        "currency": "CZK",
        "vs": "1002",
        "ss": "2026000002",
        "ks": "0308",
        "counterparty_account": None,
        "counterparty_name": None,
        "message": None,
    },
}


def test_payment_received_parses() -> None:
    event, data = parse(json.dumps(PAYMENT).encode())
    assert event.subject == "1002" and data.amount_minor == 49900  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "tombstone"),
        (b"not json", "not a CloudEvent"),
        (json.dumps({**PAYMENT, "type": "payment.exploded.v1"}).encode(), "unknown event type"),
        (json.dumps({**PAYMENT, "data": {**PAYMENT["data"], "vs": "00123"}}).encode(), "vs"),
        (
            json.dumps({**PAYMENT, "data": {**PAYMENT["data"], "amount_minor": 499.5}}).encode(),
            "amount_minor",
        ),
        (json.dumps({**PAYMENT, "data": {**PAYMENT["data"], "extra": 1}}).encode(), "extra"),
    ],
)
def test_poison_messages_name_the_problem(raw: bytes | None, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        parse(raw)
