"""The layers hold (DESIGN.md sections 2 and 9, issue 28 item 8), read from the code's syntax:

- a service imports only its own modules, ``services.runtime`` and ``schemas``: never
  another service (they learn from events);
- the runtime imports no service: it is what every worker runs, and names none;
- ``schemas`` (the event contracts) imports nothing from ``services``;
- a ``domain.py`` imports only modules known to be pure (``PURE``: parts of the standard
  library, ``schemas``, its service's own modules that are pure by the same rules), nothing
  that does I/O (``IO``), and reads no clock (a call of ``now()``, ``today()``,
  ``time.time()`` ...: "now" is an argument).

Only the dev stack (``services/devstack/``: the embedded stack, quiescence, the demo), the
command line's assembler (``services/cli.py``) and the list of workers may name every
service. Every import counts, those inside a function too. The checker runs on the real
tree and, to show it can fail, on small synthetic trees with one violation each.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.test_queries import _literal

ROOT = Path(__file__).resolve().parents[2]

# Top-level names under services/ that are not services: they may import the services.
ASSEMBLERS = frozenset({"devstack", "cli", "workers", "__init__"})
RUNTIME = "runtime"

# What a domain.py may import: the standard library's pure parts, pure third-party
# libraries, the event contracts. Anything else is refused until someone adds it here,
# having checked that it does no I/O and reads no clock.
PURE = frozenset(
    {
        "__future__",
        "abc",
        "bisect",
        "calendar",
        "collections",
        "collections.abc",
        "dataclasses",
        "datetime",
        "decimal",
        "enum",
        "fractions",
        "functools",
        "hashlib",
        "heapq",
        "hmac",
        "itertools",
        "math",
        "operator",
        "re",
        "string",
        "typing",
        "unicodedata",
        "zoneinfo",
        "holidays",  # public holidays of CZ, SK, HU as data
        "schemas",
    }
)
# Modules that do I/O: named in the message, refused in a domain.py and in every module of
# its service that it imports.
IO = frozenset(
    {
        "asyncio",
        "asyncpg",
        "aiokafka",
        "faust",
        "aiohttp",
        "aiosmtpd",
        "http",
        "httpx",
        "os",
        "requests",
        "shutil",
        "smtplib",
        "socket",
        "subprocess",
        "urllib",
    }
)
# Calls that read the clock: any ``.now()``, ``.today()``, ``.utcnow()``; and the time
# module's readings (``time.time()``, not ``dt.time()``, a datetime's time of day).
CLOCK_METHODS = frozenset({"now", "today", "utcnow"})
CLOCK_FUNCTIONS = frozenset(
    {f"time.{f}" for f in ("time", "time_ns", "monotonic", "monotonic_ns", "perf_counter")}
    | {f"datetime.{c}.{m}" for c in ("datetime", "date") for m in CLOCK_METHODS}
)


@dataclass(frozen=True)
class Import:
    module: str  # dotted, as resolved: ``from services.x import y`` -> services.x.y
    line: int


def _package(path: Path, root: Path) -> list[str]:
    return list(path.relative_to(root).with_suffix("").parts[:-1])


def imports(tree: ast.AST, path: Path, root: Path) -> list[Import]:
    """Every import in the module, at any depth (a function's own imports too), and every
    module named to ``importlib.import_module``; ``from a import b`` counts as ``a.b`` where
    ``a`` is a top-level package (b may be a service), else as ``a``."""
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package
                package = _package(path, root)
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            if base.count(".") >= 1:  # services.x: its names are what x holds
                found.append(Import(base, node.lineno))
            else:  # from services import dunning: each name may be a package
                found += [Import(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call) and _called(node.func) in ("import_module", "__import__"):
            # an f-string's values read as "{}": services.{}.worker names every service
            name = _literal(node.args[0]) if node.args else None
            if name is not None:
                found.append(Import(name, node.lineno))
    return found


def _called(func: ast.expr) -> str | None:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _top(module: str, prefix: str) -> str | None:
    """``services.payments.domain`` -> ``payments`` for prefix ``services``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == prefix else None


def _bound_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted thing it was imported as (``dt`` -> ``datetime.datetime``)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def clock_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """Calls that read the clock, with their line and how they are written."""
    bound = _bound_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            written = ast.unparse(func)
            receiver = ast.unparse(func.value)
            head, _, rest = receiver.partition(".")
            resolved = ".".join(p for p in (bound.get(head, head), rest, func.attr) if p)
            if func.attr in CLOCK_METHODS or resolved in CLOCK_FUNCTIONS:
                found.append((node.lineno, f"{written}()"))
        elif isinstance(func, ast.Name):
            resolved = bound.get(func.id, func.id)
            if resolved in CLOCK_FUNCTIONS or func.id in CLOCK_METHODS:
                found.append((node.lineno, f"{func.id}()"))
    return found


class Tree:
    """The modules of ``schemas/`` and ``services/`` under a root, parsed once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: dict[str, tuple[Path, ast.AST]] = {}
        for folder in ("schemas", "services"):
            for path in sorted((root / folder).rglob("*.py")):
                if ".venv" in path.parts:
                    continue
                parts = list(path.relative_to(root).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                self.modules[".".join(parts)] = (path, ast.parse(path.read_text("utf-8")))

    def where(self, module: str, line: int) -> str:
        return f"{self.modules[module][0].relative_to(self.root)}:{line}"

    def violations(self) -> list[str]:
        found: list[str] = []
        for module, (path, tree) in self.modules.items():
            found += self._layer(module, path, tree)
            if module.startswith("services.") and module.endswith(".domain"):
                found += self._pure(module, set())
        return sorted(set(found))

    def _layer(self, module: str, path: Path, tree: ast.AST) -> list[str]:
        own = _top(module, "services")
        found = []
        for imp in imports(tree, path, self.root):
            other = _top(imp.module, "services")
            if module.split(".")[0] == "schemas" and imp.module.split(".")[0] == "services":
                found.append(
                    f"{self.where(module, imp.line)}: schemas imports {imp.module}: the event "
                    "contracts import nothing from services"
                )
            elif own == RUNTIME and other is not None and other != RUNTIME:
                found.append(
                    f"{self.where(module, imp.line)}: the runtime imports {imp.module}: it "
                    "runs in every worker and names no service (the dev stack does)"
                )
            elif (
                own is not None
                and own not in ASSEMBLERS | {RUNTIME}
                and other is not None
                and other not in (own, RUNTIME)
            ):
                found.append(
                    f"{self.where(module, imp.line)}: service {own} imports {imp.module}: a "
                    "service imports only its own modules, services.runtime and schemas"
                )
        return found

    def _pure(self, module: str, seen: set[str]) -> list[str]:
        """``module`` (a domain.py, or a module of its service it imports) does no I/O and
        reads no clock; a domain.py imports only what ``PURE`` names or its own service's
        modules, each held to the same rules."""
        if module in seen or module not in self.modules:
            return []
        seen.add(module)
        path, tree = self.modules[module]
        service = _top(module, "services")
        is_domain = module.endswith(".domain")
        found = []
        for imp in imports(tree, path, self.root):
            top = imp.module.split(".")[0]
            if top in IO:
                found.append(
                    f"{self.where(module, imp.line)}: {module} imports {imp.module}, which "
                    "does I/O: a domain takes facts and returns decisions"
                )
            elif _top(imp.module, "services") == service:
                found += self._pure(imp.module, seen)
            elif is_domain and not (imp.module in PURE or top in PURE):
                found.append(
                    f"{self.where(module, imp.line)}: {module} imports {imp.module}, not "
                    "known to be pure (add it to PURE in tests/unit/test_architecture.py "
                    "once it is checked to do no I/O and read no clock)"
                )
        for line, call in clock_reads(tree):
            found.append(
                f"{self.where(module, line)}: {module} reads the clock ({call}): "
                "a domain takes 'now' as an argument"
            )
        return found


def test_the_layers_hold() -> None:
    assert Tree(ROOT).violations() == []


def test_every_service_and_domain_is_checked() -> None:
    """The checker sees the real tree: if it found nothing to check, it would pass on it."""
    tree = Tree(ROOT)
    domains = {m for m in tree.modules if m.startswith("services.") and m.endswith(".domain")}
    assert {"services.payments.domain", "services.dunning.domain"} <= domains
    assert "services.runtime.worker" in tree.modules and "schemas.events" in tree.modules


def _tree(tmp_path: Path, files: dict[str, str]) -> Tree:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Tree(tmp_path)


BAD = {
    "a service imports another": (
        {"services/payments/service.py": "from services.dunning import domain\n"},
        "services/payments/service.py:1: service payments imports services.dunning",
    ),
    "inside a function": (
        {"services/payments/web.py": "def f():\n    import services.notify.templates\n"},
        "services/payments/web.py:2: service payments imports services.notify.templates",
    ),
    "relative": (
        {"services/payments/web.py": "from ..dunning import policy\n"},
        "services/payments/web.py:1: service payments imports services.dunning",
    ),
    "the runtime imports a service": (
        {"services/runtime/quiet.py": "from services.notify.worker import SPEC\n"},
        "services/runtime/quiet.py:1: the runtime imports services.notify.worker",
    ),
    "the runtime imports every worker by name": (
        {
            "services/runtime/quiet.py": (
                "import importlib\nfor s in ('a', 'b'):\n"
                "    importlib.import_module(f'services.{s}.worker')\n"
            )
        },
        "services/runtime/quiet.py:3: the runtime imports services.{}.worker",
    ),
    "the runtime imports the dev stack": (
        {"services/runtime/cli.py": "def f():\n    from services.devstack import stack\n"},
        "services/runtime/cli.py:2: the runtime imports services.devstack",
    ),
    "schemas imports services": (
        {"schemas/events.py": "from services.runtime.settings import Topics\n"},
        "schemas/events.py:1: schemas imports services.runtime.settings",
    ),
    "a domain imports asyncpg": (
        {"services/payments/domain.py": "import asyncpg\n"},
        "services/payments/domain.py:1: services.payments.domain imports asyncpg, which does I/O",
    ),
    "a domain imports os": (
        {"services/notify/domain.py": "from os import environ\n"},
        "services/notify/domain.py:1: services.notify.domain imports os.environ, which does",
    ),
    "a domain imports what is not known pure": (
        {"services/notify/domain.py": "import pydantic_settings\n"},
        "services/notify/domain.py:1: services.notify.domain imports pydantic_settings, not "
        "known to be pure",
    ),
    "a domain imports the runtime": (
        {"services/notify/domain.py": "from services.runtime.clock import Clock\n"},
        "services/notify/domain.py:1: services.notify.domain imports services.runtime.clock, "
        "not known to be pure",
    ),
    "a domain's own module does I/O": (
        {
            "services/dunning/domain.py": "from services.dunning.policy import Policy\n",
            "services/dunning/policy.py": "x = 1\n\ndef load():\n    import subprocess\n",
        },
        "services/dunning/policy.py:4: services.dunning.policy imports subprocess, which does",
    ),
    "datetime.now()": (
        {"services/dunning/domain.py": "from datetime import datetime\nx = datetime.now()\n"},
        "services/dunning/domain.py:2: services.dunning.domain reads the clock (datetime.now())",
    ),
    "date.today()": (
        {"services/dunning/domain.py": "import datetime as d\nx = d.date.today()\n"},
        "services/dunning/domain.py:2: services.dunning.domain reads the clock (d.date.today())",
    ),
    "time.time()": (
        {"services/notify/domain.py": "import time\ndef f():\n    return time.time()\n"},
        "services/notify/domain.py:3: services.notify.domain reads the clock (time.time())",
    ),
    "monotonic imported by name": (
        {"services/notify/domain.py": "from time import monotonic as m\nx = m()\n"},
        "services/notify/domain.py:2: services.notify.domain reads the clock (m())",
    ),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_violation_is_found_and_named(tmp_path: Path, case: str) -> None:
    files, expected = BAD[case]
    found = _tree(tmp_path, files).violations()
    assert any(v.startswith(expected) for v in found), found


def test_what_the_layers_allow_passes(tmp_path: Path) -> None:
    allowed = {
        "services/devstack/quiesce.py": "from services.notify.worker import SPEC\n",
        "services/cli.py": "from services.dunning import cli\n",
        "services/payments/service.py": (
            "from schemas.events import X\nfrom services.runtime.unit import Unit\n"
            "from services.payments import domain\nfrom . import queue\n"
        ),
        "services/payments/queue.py": "import asyncpg\n",  # not reached from the domain
        "services/notify/domain.py": (
            "from datetime import datetime, time\nimport zoneinfo\nfrom schemas.money import M\n"
            "def quiet(local: datetime) -> bool:\n"
            "    return local.time() >= time(20, 0)\n"  # a datetime's time of day: no clock
        ),
        "services/dunning/domain.py": "import holidays\nfrom services.dunning import policy\n",
        "services/dunning/policy.py": "import tomllib\nfrom pathlib import Path\n",
        "services/runtime/worker.py": "from schemas.registry import EVENT_TYPES\nimport asyncpg\n",
    }
    assert _tree(tmp_path, allowed).violations() == []
