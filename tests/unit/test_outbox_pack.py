"""Packed outbox rows: ``pack``/``unpack`` give back exactly the events, and ``packed``
keeps emit order while packing only long runs of one topic, type and headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.runtime.db import Jsonb
from services.runtime.outbox import (
    HEADERS,
    PACK_AT_LEAST,
    PACK_MAX,
    OutboxRow,
    pack,
    packed,
    unpack,
)

events = st.lists(st.tuples(st.none() | st.binary(max_size=40), st.binary(max_size=300)))


@given(events)
def test_unpack_gives_back_what_pack_packed(evs: list[tuple[bytes | None, bytes]]) -> None:
    assert unpack(pack(evs), len(evs)) == evs


@pytest.mark.parametrize(
    ("value", "records", "error"),
    [
        (pack([(b"k", b"v")])[:-1], 1, "a value of 1 bytes at byte 9"),
        (pack([(b"k", b"v")]) + b"\x00", 1, "malformed"),
        (pack([(b"k", b"v")]), 2, "1 packed events in 10 bytes, 2 expected"),
        (b"\xff\xff\xff\xff\xff\xff\xff\xfe", 1, "a value of -2 bytes"),
    ],
    ids=["cut short", "trailing byte", "fewer than said", "negative length"],
)
def test_a_malformed_packed_value_names_its_row(value: bytes, records: int, error: str) -> None:
    with pytest.raises(ValueError, match="outbox row 7") as caught:
        unpack(value, records, "outbox row 7")
    assert error in str(caught.value)


def _row(i: int, type_: str = "invoice.issued.v1", topic: str = "billing.invoices") -> OutboxRow:
    return (topic, f"{i}".encode(), f"value {i}".encode(), HEADERS, type_)


def _events(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """The (topic, key, value, headers, type) of every event the written rows hold."""
    out: list[tuple[object, ...]] = []
    for topic, key, value, headers, type_, records in rows:
        if records is None:
            out.append((topic, key, value, headers, type_))
        else:
            assert key is None
            assert isinstance(value, bytes) and isinstance(records, int)
            out += [(topic, k, v, headers, type_) for k, v in unpack(value, records)]
    return out


def test_long_runs_are_packed_in_order_and_short_ones_are_not() -> None:
    outbox = (
        [_row(i) for i in range(PACK_MAX + PACK_AT_LEAST + 3)]  # a row and a half
        + [_row(i, "fee.charged.v1") for i in range(PACK_AT_LEAST - 1)]  # too short
        + [_row(i, topic="billing.dunning") for i in range(PACK_AT_LEAST)]  # another topic
        + [
            ("billing.invoices.dlq", None, b"junk", Jsonb('[["dlq-reason", "r"]]'), "dead-letter")
            for _ in range(PACK_AT_LEAST)
        ]
        + [_row(i) for i in range(5)]
    )
    rows = packed(outbox)
    assert [r[5] for r in rows] == (
        [PACK_MAX, PACK_AT_LEAST + 3]
        + [None] * (PACK_AT_LEAST - 1)
        + [PACK_AT_LEAST]
        + [None] * PACK_AT_LEAST  # each dead letter's headers are its own: never packed
        + [None] * 5
    )
    assert _events(list(rows)) == outbox


@given(
    st.lists(
        st.tuples(st.sampled_from(["a.v1", "b.v1"]), st.sampled_from(["t1", "t2"])),
        max_size=3 * PACK_AT_LEAST,
    ).map(lambda kinds: [_row(i, ty, to) for i, (ty, to) in enumerate(kinds)])
)
def test_packing_never_reorders_or_drops_an_event(outbox: list[OutboxRow]) -> None:
    assert _events(list(packed(outbox))) == outbox
