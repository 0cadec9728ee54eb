from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.devstack.demo import isolated_stack
from services.devstack.stack import Stack

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(database_url: str, tmp_path: Path) -> Iterator[Stack]:
    """The whole system: a fresh Tansu broker, a fresh database, an SMTP sink, 5 workers."""
    run_dir = tmp_path / "run"
    s = isolated_stack(run_dir, database_url)
    try:
        s.start_infrastructure()
        s.start_workers()
        yield s
    finally:
        s.stop()
        keep = ROOT / "artifacts" / "e2e-logs"
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copytree(run_dir / "logs", keep / tmp_path.name, dirs_exist_ok=True)
