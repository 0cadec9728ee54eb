"""Named SQL blocks loaded once from a ``.sql`` file (the procrastinate way).

A block starts with ``-- name: <query_name>`` and runs to the next such line. asyncpg runs
each one with ``$n`` parameters; nothing is ever formatted into SQL text.
"""

from __future__ import annotations

import re
from pathlib import Path

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$")


class Queries:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._blocks: dict[str, str] = {}
        current: str | None = None
        lines: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _NAME.match(line)
            if match:
                if current:
                    self._blocks[current] = "\n".join(lines).strip()
                current, lines = match.group(1), []
            elif current:
                lines.append(line)
        if current:
            self._blocks[current] = "\n".join(lines).strip()

    def __getattr__(self, name: str) -> str:
        try:
            return self._blocks[name]
        except KeyError:
            raise AttributeError(f"{self._path}: no query named {name!r}") from None


def load(module_file: str, name: str = "queries.sql") -> Queries:
    return Queries(Path(module_file).with_name(name))
