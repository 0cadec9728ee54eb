"""The chaos run (bench/chaos.py, ``make chaos``) in short: a three-broker Apache Kafka
cluster, two instances of every worker, load, and every kind of fault at least once; its
last line is one JSON object and it exits 0 only if every invariant holds. The same run with
a deliberate defect (every e-mail sent twice) must exit 1: the checks are not vacuous."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SABOTAGE = Path(__file__).resolve().parent / "sabotage"


def chaos(run_dir: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
    proc = subprocess.run(
        [
            sys.executable, "-m", "bench.chaos", "--seconds", "50", "--contracts", "2000",
            "--min-faults", "1", "--settle", "240", "--run-dir", str(run_dir), *extra,
        ],
        cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    last = proc.stdout.strip().splitlines()[-1]
    return proc.returncode, json.loads(last), proc.stderr


def test_a_short_chaos_run_holds_every_invariant(tmp_path: Path) -> None:
    code, result, log = chaos(tmp_path / "chaos")
    assert result["ok"], (result.get("failed"), result.get("error"), result, log[-3000:])
    assert code == 0
    assert result["broker"].startswith("Apache Kafka")
    assert set(result["faults"]) == {"worker_kill", "broker_kill", "broker_pause",
                                     "postgres_restart"}  # fmt: skip
    assert all(n >= 1 for n in result["faults"].values())
    assert result["payments_sent"] == result["payments_stored"] > 0
    assert result["money_conserved"] is True
    for zero in ("duplicates", "settled_not_active", "notifications_twice", "paid_but_dunned",
                 "outbox_left", "lag", "dlq"):  # fmt: skip
        assert result[zero] == 0, (zero, result)


@pytest.mark.chaos  # about 2 min: `make chaos` runs it, `make test` does not
def test_a_system_that_mails_twice_fails_the_run(tmp_path: Path) -> None:
    code, result, log = chaos(
        tmp_path / "chaos",
        "--contracts",
        "1000",
        env={"PYTHONPATH": str(SABOTAGE), "BILLING_SABOTAGE": "mail-twice"},
    )
    assert code == 1 and result["ok"] is False, (result, log[-3000:])
    assert result["notifications_twice"] == result["mails_sent"] > 0, result
