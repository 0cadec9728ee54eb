"""``billing offsets restore FILE`` refuses a file that is not what ``save`` wrote, naming
where and what, before it touches any consumer group."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.runtime.errors import BadInput
from services.runtime.offsets import read_saved


def test_a_saved_file_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "offsets.json"
    path.write_text('{"billing-payments": {"payments.received": {"0": 12, "1": 0}}}')
    assert read_saved(path) == {"billing-payments": {"payments.received": {"0": 12, "1": 0}}}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"billing-payments": {"payments.received": {"0": 12,}}}', "offsets.json:1: not JSON"),
        ("[1, 2]", "expected an object of groups, got list"),
        ('{"billing-payments": [1]}', "group billing-payments: expected an object of topics"),
        ('{"g": {"t": {"zero": 1}}}', "group g, topic t: expected partition numbers"),
        ('{"g": {"t": {"0": -1}}}', "group g, topic t: expected partition numbers"),
        ('{"g": {"t": {"0": 1.5}}}', "group g, topic t: expected partition numbers"),
        ('{"g": {"t": {"0": true}}}', "group g, topic t: expected partition numbers"),
    ],
)
def test_anything_else_is_refused_by_name(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "offsets.json"
    path.write_text(text)
    with pytest.raises(BadInput, match=named):
        read_saved(path)
