"""deploy/grafana (issue 32 item 2): the dashboards are what services/runtime/dashboards.py
writes, read only metrics a worker exports, and every expression parses (promtool). The
end-to-end test (tests/e2e/test_chain.py) evaluates them against a Prometheus that scraped
a running stack."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from services.runtime import dashboards
from tests.unit.test_metrics_exported import exported, metrics
from tests.unit.test_prometheus import promtool

NAME = re.compile(r"\bbilling_[a-z0-9_]+\b")


def test_the_files_are_what_the_generator_writes() -> None:
    for path, text in dashboards.render().items():
        assert path.exists(), f"{path} missing: python -m services.runtime.dashboards"
        assert path.read_text() == text, f"{path} stale: python -m services.runtime.dashboards"
    assert set(dashboards.on_disk()) == {d.uid for d in dashboards.DASHBOARDS}


def test_every_metric_a_panel_reads_is_exported() -> None:
    have = exported()
    missing = {
        (uid, title, name)
        for uid, doc in dashboards.on_disk().items()
        for title, expr in dashboards.expressions(doc)
        for name in NAME.findall(expr)
        if name not in have
    }
    assert not missing, f"panels read metrics no worker exports: {sorted(missing)}"


def test_the_documents_gauges_are_exported_by_stage() -> None:
    labels = {m._name: set(m._labelnames) for m in metrics()}
    assert labels["billing_documents_pending"] == {"stage"}
    assert labels["billing_documents_pending_oldest_seconds"] == {"stage"}
    assert labels["billing_documents_failed"] == set()


def test_every_panel_reads_the_data_source_variable_and_has_an_id_of_its_own() -> None:
    for uid, doc in dashboards.on_disk().items():
        ids = [p["id"] for p in doc["panels"]]
        assert len(ids) == len(set(ids)), uid
        assert doc["templating"]["list"][0]["name"] == "DS_PROMETHEUS"
        for panel in doc["panels"]:
            assert panel["targets"], (uid, panel["title"])
            for target in [panel, *panel["targets"]]:
                assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", (uid, panel["title"])
    goal = next(
        p
        for p in dashboards.on_disk()["billing-reconnect"]["panels"]
        if p["title"] == "Reconnect time"
    )
    steps = goal["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == 1.0  # the 1-second goal line


def test_every_expression_parses(tmp_path: Path) -> None:
    """Each expression as a recording rule: ``promtool check rules`` parses the PromQL."""
    rules = [
        {"record": f"check:{uid.replace('-', '_')}:{n}", "expr": expr}
        for uid, doc in dashboards.on_disk().items()
        for n, (_title, expr) in enumerate(dashboards.expressions(doc))
    ]
    (tmp_path / "panels.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]})
    )
    done = promtool("check", "rules", "panels.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(rules)} rules found" in done.stdout + done.stderr
