"""Every module's ``ROOT`` is the repository's root: a module moved to another folder (the
demo went from services/ to services/devstack/) must not write its run folder, logs or
documents beside the code."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _modules_with_root() -> list[str]:
    found = []
    for path in sorted([*REPO.glob("services/**/*.py"), *REPO.glob("bench/*.py")]):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "ROOT" for t in node.targets
            ):
                found.append(".".join(path.relative_to(REPO).with_suffix("").parts))
    return found


MODULES = _modules_with_root()


def test_the_scan_finds_the_known_roots() -> None:
    assert {"services.devstack.demo", "services.cli", "bench.chaos"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_root_is_the_repository(module: str) -> None:
    assert importlib.import_module(module).ROOT == REPO, module
