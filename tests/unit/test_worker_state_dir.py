"""Faust's data directory is never the working directory (the shipped systemd unit mounts
that read-only): it goes under the state directory, systemd's $STATE_DIRECTORY by default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.runtime.settings import Settings
from services.runtime.worker import faust_app


def test_faust_data_directory_is_under_the_state_directory(tmp_path: Path) -> None:
    app = faust_app("billing-payments", tmp_path / "state")
    datadir = Path(app.conf.datadir)
    assert datadir.is_absolute()
    assert datadir.parent == tmp_path / "state"
    assert Path.cwd() not in (datadir, *datadir.parents)


def test_state_directory_from_systemd_then_temporary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BILLING_STATE_DIR", raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/billing:/var/lib/other")
    assert Settings().state_path() == tmp_path / "billing"
    monkeypatch.delenv("STATE_DIRECTORY")
    default = Settings().state_path()
    assert default.is_absolute() and str(os.getuid()) in default.name
    monkeypatch.setenv("BILLING_STATE_DIR", str(tmp_path / "mine"))
    assert Settings().state_path() == tmp_path / "mine"
