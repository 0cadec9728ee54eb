"""A real Prometheus (Debian's package, as on the operators' host) scraping a running stack's
workers every second, for the dashboards' end-to-end check (issue 32 item 2): every panel
expression of deploy/grafana evaluates without error, and the key panels return data.

Without the ``prometheus`` binary the check skips, and fails under CI=true
(tests/conftest.py's ``unavailable``), as the promtool tests do."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from services.devstack.procs import free_port, spawn, stop
from services.devstack.stack import Stack
from services.runtime import dashboards
from services.workers import SERVICES
from tests.conftest import unavailable


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:  # a bad query: 400 with the error in JSON
            body = json.load(exc)
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar) of ``expr`` now; raises on a query error."""
        data = self.get("/api/v1/query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """``expr``'s result once it has one (a gauge's timer, the next scrape)."""
        deadline = time.monotonic() + timeout
        while not (result := self.query(expr)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no data from {expr} after {timeout} s")
            time.sleep(0.5)
        return result

    def wait_until_up(self, targets: int, timeout: float = 30.0) -> None:
        """Every target scraped successfully, twice at least (a rate needs two samples)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                active = self.get("/api/v1/targets")["activeTargets"]
                ups = self.query('count_over_time(up{job="billing"}[1m]) >= 2 and up == 1')
            except (OSError, AssertionError):
                active, ups = [], []
            if len(active) == targets and len(ups) == targets:
                return
            if time.monotonic() > deadline:
                down = [(t["labels"].get("worker"), t.get("lastError")) for t in active]
                raise AssertionError(f"targets not all up after {timeout} s: {down}")
            time.sleep(0.5)


@contextmanager
def scraping(stack: Stack, run_dir: Path) -> Iterator[Prometheus]:
    """Prometheus scraping every worker of ``stack`` each second, its data in ``run_dir``."""
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable(
            "prometheus is not installed (Debian's prometheus package; make test installs it"
            " with apt-get when root)",
            "the dashboards' check against Prometheus",
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "billing",  # as deploy/prometheus/prometheus.yml: the panels select it
                "scrape_timeout": "1s",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{stack.metrics_port(s)}"], "labels": {"worker": s}}
                    for s in SERVICES
                ],
            }
        ],
    }
    (run_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = spawn(
        [
            binary,
            f"--config.file={run_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={run_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        dict(os.environ),
        run_dir / "prometheus.log",
    )
    try:
        yield Prometheus(f"http://127.0.0.1:{port}")
    finally:
        stop(proc)


def check_dashboards(prom: Prometheus, key_panels: dict[str, list[str]]) -> list[str]:
    """Every expression of every dashboard on disk evaluated now: the problems found (a
    query error, or a key panel, named by dashboard uid and title, without data)."""
    problems = []
    seen: set[tuple[str, str]] = set()
    for uid, doc in dashboards.on_disk().items():
        for title, expr in dashboards.expressions(doc):
            seen.add((uid, title))
            try:
                result = prom.query(expr)
            except AssertionError as exc:
                problems.append(f"{uid} / {title}: {exc}")
                continue
            if title in key_panels.get(uid, []) and not result:
                problems.append(f"{uid} / {title}: no data from {expr}")
    for uid, titles in key_panels.items():
        problems += [f"{uid} / {t}: no such panel" for t in titles if (uid, t) not in seen]
    return problems
