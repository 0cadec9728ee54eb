"""The Grafana dashboards of the metrics the workers export (metrics.py and the services'
own), as code: each panel is a title, its PromQL and a unit; ``render()`` makes the
dashboards' JSON (Grafana 10/11 schema) and the provisioning files Grafana reads them by.

    python -m services.runtime.dashboards    write deploy/grafana/ from this module

A test keeps deploy/grafana/ equal to what this writes, another that every metric a panel
reads is one a worker exports, and the end-to-end test evaluates every expression against
a Prometheus that scraped a running stack (docs/operations.md, Dashboards).

The data source is the variable ``DS_PROMETHEUS`` (any Prometheus data source; the
provisioned one, uid ``billing-prometheus``, is the default), so an operator can import a
file by hand into a Grafana that names its Prometheus otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas import events as ev
from schemas.registry import TOPIC_EVENTS, type_of

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
RATE = "$__rate_interval"
# events per hour of one service and type (a counter's rate, scaled)
PER_HOUR = (
    'sum(rate(billing_events_{way}_total{{service="{service}",type=~"{types}"}}[{rate}]))'
    " by (type) * 3600"
)


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""
    kind: str = "timeseries"  # or "stat", "bargauge"
    # a red line at this value (the reconnect goal), drawn on the graph
    goal: float | None = None
    width: int = 12


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    # label -> the metric whose values it offers (a "$label" in the expressions)
    variables: dict[str, str] = field(default_factory=dict)


def per_hour(way: str, service: str, *models: type[BaseModel] | str) -> Query:
    """Events per hour a service consumed (``in``) or published (``out``), of the types of
    ``models`` (an event model, or its type)."""
    types = [m if isinstance(m, str) else type_of(m) for m in models]
    return Query(
        PER_HOUR.format(way=way, service=service, types="|".join(types), rate=RATE), "{{type}}"
    )


def quantiles(bucket: str, by: str = "", legend: str = "") -> tuple[Query, ...]:
    labels = f"le, {by}" if by else "le"
    return tuple(
        Query(
            f"histogram_quantile({q}, sum(rate({bucket}[{RATE}])) by ({labels}))",
            f"{legend}p{round(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    )


MONEY = Dashboard(
    uid="billing-money",
    title="Billing: money flow",
    description="Payments in, how they were matched, the unmatched queue, documents out",
    panels=(
        Panel(
            "Payments per hour",
            (
                per_hour("in", "payments", ev.PaymentReceived),
                per_hour(
                    "out",
                    "payments",
                    ev.PaymentMatched,
                    ev.PaymentUnmatched,
                    ev.PaymentReversed,
                ),
            ),
            description="Received from the bank (payments.received) and what matching made"
            " of them: matched to an invoice, unmatched (the queue), reversed",
        ),
        Panel(
            "Invoices per hour",
            (
                per_hour("out", "invoicing", ev.InvoiceIssued, ev.CreditNoteIssued),
                per_hour(
                    "out",
                    "payments",
                    ev.InvoiceSettled,
                    ev.InvoicePartiallyPaid,
                    ev.InvoiceReopened,
                ),
            ),
            description="Issued by billing runs and top-ups; settled, partially paid and"
            " reopened by payments",
        ),
        Panel(
            "Unmatched payments waiting",
            (Query("billing_unmatched_payments", "{{currency}}"),),
            description="Credits in the unmatched queue, per currency (billing payments"
            " unmatched lists them)",
            width=8,
        ),
        Panel(
            "Unmatched amount",
            (Query("billing_unmatched_payments_amount", "{{currency}}"),),
            description="Sum of the waiting credits per currency, in major units",
            width=8,
        ),
        Panel(
            "Oldest unmatched payment",
            (Query("billing_unmatched_payments_oldest_seconds", "{{currency}}"),),
            unit="s",
            kind="stat",
            description="Age of the oldest waiting credit; the alert"
            " BillingUnmatchedPaymentsAgeing watches it",
            width=8,
        ),
        Panel(
            "Documents not yet delivered",
            (
                Query("billing_documents_pending", "{{stage}}"),
                Query("billing_documents_failed", "cannot be made"),
            ),
            description="Invoices and credit notes issued and not delivered: to_make (no PDF"
            " and ISDOC yet), to_deliver (with notify); cannot be made: a customer without an"
            " address (billing documents undelivered)",
        ),
        Panel(
            "Oldest undelivered document",
            (Query("billing_documents_pending_oldest_seconds", "{{stage}}"),),
            unit="s",
        ),
    ),
)

# what dunning asks for: every type of its topic but the status it carries to the zone
DUNNING_ACTIONS = tuple(t for t in TOPIC_EVENTS["dunning"] if t != type_of(ev.DunningStatus))

DUNNING = Dashboard(
    uid="billing-dunning",
    title="Billing: dunning funnel",
    description="Contracts per dunning stage and access state, and what dunning asks for",
    panels=(
        Panel(
            "Contracts by dunning stage",
            (Query("billing_contracts_by_dunning_stage", "{{stage}}"),),
            kind="bargauge",
        ),
        Panel(
            "Contracts by access state",
            (Query("billing_contracts_by_access", "{{state}}"),),
            kind="bargauge",
        ),
        Panel(
            "Dunning actions per hour",
            (per_hour("out", "dunning", *DUNNING_ACTIONS),),
            description="Reminders, notices, suspensions, restrictions, restores and fees"
            " dunning requested",
        ),
        Panel(
            "Access changes and notices confirmed per hour",
            (
                per_hour("out", "provisioning", ev.NetworkAccess),
                per_hour("in", "dunning", ev.NoticeAcknowledged, ev.PromiseMade),
            ),
        ),
        Panel(
            "Notifications waiting",
            (
                Query("billing_notifications_pending", "waiting"),
                Query("billing_notifications_pending_oldest_seconds", "oldest (s)"),
            ),
            description="E-mails and SMS waiting to be sent, retries included, and the"
            " oldest's age",
        ),
        Panel(
            "Notification failures per hour",
            (
                Query(
                    f"sum(rate(billing_notify_failures_total[{RATE}])) by (channel, reason) * 3600",
                    "{{channel}} {{reason}}",
                ),
            ),
        ),
    ),
)

RECONNECT = Dashboard(
    uid="billing-reconnect",
    title="Billing: reconnect latency",
    description="From a payment's arrival (payments.received) to the gear reporting the"
    " restore applied; the goal is under one second",
    panels=(
        Panel(
            "Reconnect time",
            quantiles("billing_reconnect_seconds_bucket"),
            unit="s",
            goal=1.0,
            description="p50, p95, p99 of billing_reconnect_seconds; the red line is the"
            " 1-second goal (alert BillingReconnectSlow)",
            width=24,
        ),
        Panel(
            "Reconnects per hour",
            (Query(f"sum(rate(billing_reconnect_seconds_count[{RATE}])) * 3600", "restores"),),
        ),
        Panel(
            "Reconnects within the goal",
            (
                Query(
                    f'sum(rate(billing_reconnect_seconds_bucket{{le="1.0"}}[{RATE}]))'
                    f" / sum(rate(billing_reconnect_seconds_count[{RATE}]))",
                    "within 1 s",
                ),
            ),
            unit="percentunit",
            kind="stat",
        ),
    ),
)

SERVICE = '{service=~"$service"}'

PIPELINE = Dashboard(
    uid="billing-pipeline",
    title="Billing: pipeline health",
    description="Consumer lag, event age, outboxes, dead letters and errors per worker",
    variables={"service": "billing_events_in_total"},
    panels=(
        Panel(
            "Workers up",
            (Query('up{job="billing"}', "{{worker}} {{instance}}"),),
            kind="stat",
            description="1 when Prometheus scraped the worker's /metrics; /readyz says why a"
            " worker is not ready (database, broker, group)",
            width=24,
        ),
        Panel(
            "Consumer lag",
            (
                Query(
                    f"sum(billing_consumer_lag{SERVICE}) by (service, topic)",
                    "{{service}} {{topic}}",
                ),
            ),
            description="Records between the group's committed offset and the high watermark"
            " (alert BillingSlowReaction on its growth)",
        ),
        Panel(
            "Event age when applied",
            quantiles(f"billing_event_age_seconds_bucket{SERVICE}", "service", "{{service}} "),
            unit="s",
        ),
        Panel(
            "Events per second",
            (
                Query(
                    f"sum(rate(billing_events_in_total{SERVICE}[{RATE}])) by (service)",
                    "in {{service}}",
                ),
                Query(
                    f"sum(rate(billing_events_out_total{SERVICE}[{RATE}])) by (service)",
                    "out {{service}}",
                ),
            ),
        ),
        Panel(
            "Batch processing",
            quantiles(
                f"billing_batch_processing_seconds_bucket{SERVICE}", "service", "{{service}} "
            ),
            unit="s",
        ),
        Panel(
            "Outbox backlog",
            (Query(f"billing_outbox_backlog{SERVICE}", "{{service}}"),),
            description="Outbox rows not yet published",
        ),
        Panel(
            "Oldest unpublished outbox row",
            (Query(f"billing_outbox_oldest_seconds{SERVICE}", "{{service}}"),),
            unit="s",
        ),
        Panel(
            "Dead letters kept",
            (
                Query(
                    f"sum(billing_dead_letters{SERVICE}) by (service, topic)",
                    "{{service}} {{topic}}",
                ),
            ),
            description="Records in each service's dead_letters table by the topic they came"
            " from (alert BillingDeadLetters); billing dlq lists them",
        ),
        Panel(
            "Handler errors per hour",
            (
                Query(
                    f"sum(rate(billing_dlq_total{SERVICE}[{RATE}])) by (service, topic) * 3600",
                    "dead-lettered {{service}} {{topic}}",
                ),
                Query(
                    f"sum(rate(billing_transient_retries_total{SERVICE}[{RATE}])) by (service)"
                    " * 3600",
                    "retried {{service}}",
                ),
                Query(
                    f"sum(rate(billing_events_duplicate_total{SERVICE}[{RATE}])) by (service)"
                    " * 3600",
                    "duplicates skipped {{service}}",
                ),
            ),
        ),
        Panel(
            "Partitions assigned",
            (
                Query(
                    f"sum(billing_partitions_assigned{SERVICE}) by (service, topic)",
                    "{{service}} {{topic}}",
                ),
            ),
        ),
        Panel(
            "Timers fired per hour",
            (
                Query(
                    f"sum(rate(billing_timers_fired_total{SERVICE}[{RATE}])) by (service) * 3600",
                    "{{service}}",
                ),
            ),
        ),
    ),
)

BANK = Dashboard(
    uid="billing-bank",
    title="Billing: bank imports",
    description="Statements and Fio fetches per bank account, and the payments they carried",
    panels=(
        Panel(
            "Since the last import",
            (
                Query(
                    "time() - billing_bank_statement_last_import_timestamp_seconds",
                    "{{account}}",
                ),
            ),
            unit="s",
            kind="stat",
            description="Per bank account, empty statements too (alert BillingBankImportOverdue)",
            width=24,
        ),
        Panel(
            "Statements and payments imported per hour",
            (per_hour("in", "payments", ev.StatementImported, ev.PaymentReceived),),
            description="A statement with a bad line is refused whole by billing import and"
            " never reaches this graph; the command says which line",
        ),
        Panel(
            "Payments imported twice, skipped",
            (
                Query(
                    "sum(rate(billing_events_duplicate_total"
                    f'{{service="payments",topic="payments.received"}}[{RATE}])) * 3600',
                    "skipped per hour",
                ),
            ),
            description="A statement or fetch imported again: its payments are skipped by"
            " the inbox (the same bank transaction id)",
        ),
    ),
)

GEAR = Dashboard(
    uid="billing-gear",
    title="Billing: gear drift",
    description="Access provisioning wants against what each gear reports it applied",
    panels=(
        Panel(
            "Contracts a gear is behind on",
            (Query("billing_access_drift", "{{gear}}"),),
            description="GET /drift on provisioning's metrics port lists them (alert"
            " BillingGearDrift)",
        ),
        Panel(
            "Oldest unapplied access change",
            (Query("billing_access_drift_oldest_seconds", "{{gear}}"),),
            unit="s",
        ),
        Panel(
            "Access changes sent and applied per hour",
            (
                per_hour("out", "provisioning", ev.NetworkAccess),
                per_hour("in", "provisioning", ev.GearApplied),
            ),
            width=24,
        ),
    ),
)

DASHBOARDS = (MONEY, DUNNING, RECONNECT, PIPELINE, BANK, GEAR)


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.goal is not None:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": panel.goal}],
        }
        defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
        if panel.kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": q.expr,
                "legendFormat": q.legend or "__auto",
                "range": True,
            }
            for i, q in enumerate(panel.queries)
        ],
    }


def variable_json(label: str, metric: str) -> dict[str, Any]:
    return {
        "name": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": f"label_values({metric}, {label})", "refId": "variable"},
        "definition": f"label_values({metric}, {label})",
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
    }


def dashboard_json(d: Dashboard) -> dict[str, Any]:
    panels = []
    x = y = 0
    for n, panel in enumerate(d.panels, 1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(panel_json(panel, n, x, y))
        x += panel.width
    datasource = {
        "name": "DS_PROMETHEUS",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": True, "text": "billing", "value": "billing-prometheus"},
        "hide": 0,
    }
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": ["billing"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [datasource, *(variable_json(k, m) for k, m in d.variables.items())]
        },
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["billing"], "asDropdown": True, "title": "Billing"}
        ],
        "panels": panels,
    }


DATASOURCES = """\
# Grafana provisioning (deploy/README.md, Monitoring): the Prometheus that scrapes the
# billing workers (deploy/prometheus/prometheus.yml), as the default data source with the
# uid the dashboards' DS_PROMETHEUS variable picks. Copy to
# /etc/grafana/provisioning/datasources/; set the url to where Prometheus listens.
apiVersion: 1
datasources:
  - name: billing
    uid: billing-prometheus
    type: prometheus
    access: proxy
    url: http://127.0.0.1:9090
    isDefault: true
    editable: false
    jsonData:
      timeInterval: 15s  # prometheus.yml's scrape_interval: $__rate_interval builds on it
"""

PROVIDERS = """\
# Grafana provisioning (deploy/README.md, Monitoring): the billing dashboards, read from
# files. Copy to /etc/grafana/provisioning/dashboards/ and deploy/grafana/dashboards/*.json
# to /var/lib/grafana/dashboards/billing/; Grafana reloads them when they change.
apiVersion: 1
providers:
  - name: billing
    folder: Billing
    type: file
    disableDeletion: true
    allowUiUpdates: false
    updateIntervalSeconds: 60
    options:
      path: /var/lib/grafana/dashboards/billing
"""


# what a template variable stands for when an expression is evaluated outside Grafana
# (the tests): the rate window of a 1-second scrape, every value of a label
SUBSTITUTES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def expressions(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (panel title, PromQL) of a dashboard's JSON, its variables substituted: a
    Grafana builtin by SUBSTITUTES, a dashboard's own ``$label`` by every value (``.*``)."""
    own = [v["name"] for v in doc["templating"]["list"] if v["type"] == "query"]
    found = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in SUBSTITUTES.items():
                expr = expr.replace(name, value)
            for name in own:
                expr = expr.replace(f"${name}", ".*")
            found.append((panel["title"], expr))
    return found


def on_disk() -> dict[str, dict[str, Any]]:
    """deploy/grafana/dashboards/*.json by uid, as Grafana would load them."""
    docs = [json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))]
    return {d["uid"]: d for d in docs}


def render() -> dict[Path, str]:
    """Every file of deploy/grafana/ by its path, as this module writes it."""
    files = {
        GRAFANA / "dashboards" / f"{d.uid}.json": json.dumps(dashboard_json(d), indent=2) + "\n"
        for d in DASHBOARDS
    }
    files[GRAFANA / "provisioning" / "datasources" / "prometheus.yml"] = DATASOURCES
    files[GRAFANA / "provisioning" / "dashboards" / "billing.yml"] = PROVIDERS
    return files


def main() -> None:
    for path, text in render().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path.relative_to(GRAFANA.parents[1]))


if __name__ == "__main__":
    main()
