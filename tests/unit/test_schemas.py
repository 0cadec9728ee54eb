import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import generate, registry
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
        "account": "2001234561/2010",
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


# --- one pass and two passes agree -------------------------------------------------------

_SAMPLES: list[dict[str, object]] = [
    PAYMENT,
    {
        **PAYMENT, "type": "suspend.requested.v1", "source": "/services/dunning",
        "data": {
            "contract": "1002", "request_id": "1002-s", "step": "suspend",
            "policy": "notice-then-suspend", "overdue_minor": 49900, "currency": "CZK",
            "invoices": [{"invoice_number": "2026000002", "vs": "1002", "ss": "2026000002",
                          "due_on": "2026-12-15", "open_minor": 49900, "currency": "CZK"}],
            "account": "2001234561/2010", "decided_at": "2027-01-04T08:00:00+01:00",
            "acknowledged_at": None,
        },
    },
    {
        **PAYMENT, "type": "network.access.v1", "source": "/services/provisioning",
        "data": {
            "contract": "1002", "subscribers": {"ipv4": ["100.64.0.2"], "macs": []},
            "state": "suspended", "reason": "unpaid after notice", "version": 3,
            "effective_at": "2027-01-04T07:00:00.123456Z",
        },
    },
]  # fmt: skip

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _both(raw: bytes) -> tuple[object, object]:
    """What one pass and the two-pass path each make of ``raw``: the parsed (envelope as
    JSON, data) or the poison reason."""
    out = []
    for fn in (registry.parse, registry._parse_in_two):
        try:
            event, data = fn(raw)
            out.append((event.model_dump(mode="json", exclude={"data"}), data))
        except PoisonMessage as exc:
            out.append(str(exc))
    return out[0], out[1]


@pytest.mark.parametrize("sample", _SAMPLES, ids=lambda s: str(s["type"]))
def test_one_pass_parses_valid_events_as_the_two_passes_do(sample: dict[str, object]) -> None:
    one, two = _both(json.dumps(sample).encode())
    assert one == two and not isinstance(one, str)


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(_SAMPLES),
    where=st.sampled_from(["envelope", "data", "nested"]),
    pick=st.integers(min_value=0, max_value=50),
    value=_JSON,
    change=st.sampled_from(["set", "drop", "add"]),
)
def test_one_pass_and_two_passes_agree_on_any_change(
    sample: dict[str, object], where: str, pick: int, value: object, change: str
) -> None:
    """A field of a valid event set to any JSON value, dropped, or a new one added: both
    paths accept it with equal results, or both reject it with the same reason."""
    event = json.loads(json.dumps(sample))
    target = event if where == "envelope" else event["data"]
    if where == "nested":
        target = next((v for v in event["data"].values() if isinstance(v, dict)), event["data"])
    keys = sorted(target)
    name = keys[pick % len(keys)] if change != "add" else "unexpected"
    if change == "drop":
        del target[name]
    else:
        target[name] = value
    one, two = _both(json.dumps(event).encode())
    assert one == two


def test_every_event_type_is_produced_by_some_service() -> None:
    """Issue 32 item 6: a type no service's code builds is dead contract (remove it)."""
    producers = generate.produced_by()
    assert not [t for t, by in producers.items() if not by], producers
    assert producers["payment.received.v1"] == {"bank_import"}
    assert producers["gear.applied.v1"] == {"gear"}


def test_the_asyncapi_document_names_servers_operations_bindings_and_the_partitioner() -> None:
    doc = generate.asyncapi()
    assert doc["servers"]["production"]["protocol"] == "kafka"
    assert "murmur2_random" in doc["info"]["description"]
    ops = doc["operations"]
    assert ops["payments_receive_payments_received"]["action"] == "receive"
    assert ops["bank_import_send_payments_received"]["action"] == "send"
    assert ops["gear_receive_network_access"]["channel"] == {"$ref": "#/channels/network_access"}
    group = ops["dunning_receive_invoices"]["bindings"]["kafka"]["groupId"]
    assert group["const"] == "billing-dunning"
    for name, channel in doc["channels"].items():
        assert channel["bindings"]["kafka"]["topic"] == channel["address"], name
    for name, message in doc["components"]["messages"].items():
        key = message["bindings"]["kafka"]["key"]["description"]
        assert ("VS" in key) == (name == "payment_received_v1"), name
    # every operation's messages are its channel's
    for name, op in ops.items():
        channel = op["channel"]["$ref"].rsplit("/", 1)[1]
        for ref in op["messages"]:
            assert ref["$ref"].split("/")[-1] in doc["channels"][channel]["messages"], name
