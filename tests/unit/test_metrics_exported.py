"""Every metric the alert rules read is one a worker exports: the rules and the code
cannot drift apart (issue 32 item 1). Each worker module is imported, as ``python -m
services.<name>.worker`` does, and what prometheus_client registered is read back from the
registry; the rules' metric names are every ``billing_*`` name in their expressions that
is not a recording rule's."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from services.workers import SERVICES

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"
NAME = re.compile(r"\bbilling_[a-z0-9_]+\b")


def exported() -> set[str]:
    """Every sample name the workers' registry can expose (a histogram's ``_bucket``,
    ``_sum`` and ``_count``, a counter's ``_total``)."""
    for service in SERVICES:
        importlib.import_module(f"services.{service}.worker")
    names: set[str] = set()
    for collector in list(REGISTRY._collector_to_names):
        names |= set(REGISTRY._collector_to_names[collector])
    return names


def metrics() -> list[MetricWrapperBase]:
    """The workers' own metrics (prometheus_client's process and GC collectors aside)."""
    exported()
    return [c for c in list(REGISTRY._collector_to_names) if isinstance(c, MetricWrapperBase)]


def used_by_rules() -> dict[str, str]:
    """metric name -> the rule that reads it."""
    used: dict[str, str] = {}
    recorded: set[str] = set()
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                recorded.add(rule["record"])
            for name in NAME.findall(rule["expr"]):
                used.setdefault(name, rule.get("alert") or rule.get("record"))
    return {n: r for n, r in used.items() if n not in recorded}


def test_every_metric_the_rules_read_is_exported() -> None:
    have = exported()
    missing = {name: rule for name, rule in used_by_rules().items() if name not in have}
    assert not missing, f"rules read metrics no worker exports: {missing}"


def test_the_item_1_metrics_are_among_them() -> None:
    """The four the alerts waited for (docs/operations.md, Alerts) are read by the rules
    and exported with the labels the rules group by."""
    used = used_by_rules()
    for name in (
        "billing_consumer_lag",
        "billing_unmatched_payments_oldest_seconds",
        "billing_bank_statement_last_import_timestamp_seconds",
        "billing_reconnect_seconds_bucket",
    ):
        assert name in used, name
    labels = {m._name: set(m._labelnames) for m in metrics()}
    assert labels["billing_consumer_lag"] == {"service", "topic", "partition"}
    assert labels["billing_unmatched_payments_oldest_seconds"] == {"currency"}
    assert labels["billing_bank_statement_last_import_timestamp_seconds"] == {"account"}


def test_names_follow_prometheus_conventions() -> None:
    """Only counters end in ``_total`` (prometheus_client adds it to theirs); times in
    seconds and money in major units, never milliseconds or minor units."""
    for m in metrics():
        assert re.fullmatch(r"billing_[a-z0-9_]+", m._name), m._name
        assert not re.search(r"_(ms|milliseconds|minutes|hours|minor)(_|$)", m._name), m._name
        if m._type != "counter":
            assert not m._name.endswith("_total"), m._name
