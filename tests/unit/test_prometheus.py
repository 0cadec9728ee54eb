"""deploy/prometheus: the configuration and rules pass ``promtool check``, the rules' unit
tests (rules_test.yml) pass ``promtool test rules``, and every alert is held to the same
standard: a runbook, a case where it fires and one where it stays quiet (issue 32 item 3).

promtool comes with Debian's ``prometheus`` package, which ``make test`` installs
(tools/system-deps.sh); without it these tests skip, or fail under CI=true.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.workers import SERVICES
from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
# a runbook's first checks name something to run or to query
RUNBOOK_COMMANDS = ("billing ", "curl ", "psql ", "systemctl", "journalctl", "billing_")


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        unavailable(
            "promtool is not installed (Debian's prometheus package; make test installs it"
            " with apt-get when root)",
            "promtool",
        )
    return subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def load(name: str) -> Any:
    return yaml.safe_load((PROM / name).read_text())


def alerts() -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for group in load("rules.yml")["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_the_configuration_and_its_rules_pass_promtool_check() -> None:
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout + done.stderr
    done = promtool("check", "rules", "rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_unit_tests_pass() -> None:
    done = promtool("test", "rules", "rules_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_every_alert_has_a_runbook_and_a_firing_and_a_quiet_case() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in load("rules_test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    for name, rule in alerts().items():
        notes = rule.get("annotations", {})
        assert {"summary", "description", "runbook"} <= set(notes), name
        # first checks, numbered, with something to run
        assert notes["runbook"].startswith("1. "), name
        assert "\n2. " in notes["runbook"], name
        assert any(cmd in notes["runbook"] for cmd in RUNBOOK_COMMANDS), name
        assert name in fires, f"{name}: no case in rules_test.yml where it fires"
        assert name in quiet, f"{name}: no case in rules_test.yml where it stays quiet"
    assert {
        "BillingSlowReaction",
        "BillingReconnectSlow",
        "BillingUnmatchedPaymentsAgeing",
        "BillingBankImportOverdue",
        "BillingDeadLetters",
        "BillingGearDrift",
    } <= set(alerts())


def test_slow_reaction_on_absolute_lag_would_fire_on_a_billing_run(tmp_path: Path) -> None:
    """The rules' tests can fail: BillingSlowReaction written on absolute lag, as it was on
    absolute event age before, fires on the billing-run curve, and promtool says so."""
    rules = load("rules.yml")
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "BillingSlowReaction":
                rule["expr"] = "service_topic:billing_consumer_lag:sum > 1000"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    cases = load("rules_test.yml")
    run_case = "a billing run's lag curve does not fire"
    cases["tests"] = [t for t in cases["tests"] if t["name"] == run_case]
    assert len(cases["tests"]) == 1
    (tmp_path / "rules_test.yml").write_text(yaml.safe_dump(cases))
    done = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert run_case in done.stdout + done.stderr


@pytest.mark.parametrize("name", ["prometheus.yml", "targets/billing.yml"])
def test_the_targets_name_every_worker_on_its_metrics_port(name: str) -> None:
    """Static targets are each worker's default port (its SPEC.metrics_port); the file
    discovery example lists every worker too, with the same ports."""
    import importlib

    ports = {s: importlib.import_module(f"services.{s}.worker").SPEC.metrics_port for s in SERVICES}
    doc = load(name)
    groups = doc if isinstance(doc, list) else doc["scrape_configs"][0]["static_configs"]
    seen: dict[str, set[int]] = {}
    for group in groups:
        worker = group["labels"]["worker"]
        seen.setdefault(worker, set()).update(int(t.rsplit(":", 1)[1]) for t in group["targets"])
    assert seen == {s: {p} for s, p in ports.items()}
    if name == "prometheus.yml":
        job = doc["scrape_configs"][0]
        assert job["job_name"] == "billing"  # what the alerts select
        assert job["file_sd_configs"][0]["files"]
