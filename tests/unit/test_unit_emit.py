"""``Unit.emit`` writes the envelope around the data's JSON itself; it must give exactly
the bytes the envelope model gives, for any source, key, time and data."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from schemas import events as ev
from schemas.envelope import CloudEvent, event_id_text, new_event_id
from schemas.registry import parse, type_of
from services.runtime.db import Jsonb, _jsonb_encode
from services.runtime.unit import Unit

DATA = [
    ev.InvoiceIssued(
        contract="1001", invoice_number="2026000001", vs="1001", ss="2026000001",
        period="2026-12", issued_on=date(2026, 12, 1), due_on=date(2026, 12, 15),
        amount_minor=49900, currency="CZK", account="2001234561/2010",
    ),
    ev.ContractUpserted(
        contract="1002", customer_name='Žluťoučký "kůň" \\ \u2028 <b>', currency="HUF",
        monthly_fee_minor=1_500_000,
    ),
]  # fmt: skip


@pytest.mark.parametrize("data", DATA, ids=["invoice", "odd-characters"])
@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 12, 1, 7, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_emit_writes_what_the_envelope_model_writes(data: object, now: datetime) -> None:
    unit = Unit(None, now, "/services/ärger")  # type: ignore[arg-type]
    key = data.contract  # type: ignore[attr-defined]
    unit.emit(key, data)  # type: ignore[arg-type]
    _, k, value, headers, type_ = unit.outbox[0]
    event_id = json.loads(value)["id"]
    expected = CloudEvent(
        id=uuid.UUID(event_id), source="/services/ärger", type=type_of(type(data)),
        time=now, subject=key, data=data.model_dump(mode="json"),  # type: ignore[attr-defined]
    ).model_dump_json()  # fmt: skip
    assert value == expected.encode()
    assert k == key.encode() and type_ == type_of(type(data))
    assert json.loads(headers) == [["content-type", "application/cloudevents+json"]]


def test_emitted_events_parse_and_ids_differ() -> None:
    unit = Unit(None, datetime(2026, 12, 1, tzinfo=UTC), "/services/x")  # type: ignore[arg-type]
    for d in DATA[:1] * 3:
        unit.emit(d.contract, d)
    ids = set()
    for _, _, value, _, _ in unit.outbox:
        event, data = parse(value)
        assert data == DATA[0]
        ids.add(event.id)
    assert len(ids) == 3


def test_event_ids_are_distinct_version_7_uuids_that_grow_with_time() -> None:
    before = time.time_ns() // 1_000_000
    ids = [event_id_text() for _ in range(10_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    millis = [int(raw[:8] + raw[9:13], 16) for raw in ids]
    assert millis == sorted(millis) and before <= millis[0] and millis[-1] <= after
    for raw in ids[:1000]:
        parsed = uuid.UUID(raw.decode())
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert str(parsed).encode() == raw  # the canonical text form, lower case
    assert new_event_id().version == 7


def test_jsonb_text_is_written_as_is() -> None:
    assert _jsonb_encode(Jsonb('[["a", "b"]]')) == b'\x01[["a", "b"]]'
    assert _jsonb_encode([["a", "b"]]) == b'\x01[["a", "b"]]'
    assert _jsonb_encode("[]") == b'\x01"[]"'  # a plain str is a JSON string
