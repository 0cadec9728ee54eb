"""Named SQL blocks loaded once from a ``.sql`` file (the procrastinate way).

A block starts with ``-- name: <query_name>`` and runs to the next such line. The line right
after the name is a ``-- `` comment saying in one line what the query is for and any
non-obvious why (a lock, an order, the index it relies on); longer reasoning may follow in
more comment lines. tests/unit/test_queries.py holds every file to that, and every query to
being used. asyncpg runs each block with ``$n`` parameters; nothing is ever formatted into
SQL text.

A file with a name twice or a block without SQL is refused when loaded, naming the file
and line: a worker fails at import, not at the first event that runs the query (a second
block of one name used to replace the first silently).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$")
_COMMENT = re.compile(r"^--\s?(.*)$")


class QueryFileError(ValueError):
    """A ``.sql`` file of named queries that does not follow the convention."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")


@dataclass(frozen=True)
class Query:
    name: str
    description: str  # the one line after the name ("": none)
    text: str  # the SQL, with its comments after the description
    line: int  # of the name in the file


class Queries:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._queries: dict[str, Query] = {}
        name: str | None = None
        start = 0
        lines: list[str] = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = _NAME.match(line)
            if match:
                if name:
                    self._add(name, start, lines)
                name, start, lines = match.group(1), number, []
                if name.startswith("_") or name in _RESERVED:
                    raise QueryFileError(
                        path, number, f"query {name!r}: a name the loader itself answers to"
                    )
                if name in self._queries:
                    first = self._queries[name].line
                    raise QueryFileError(
                        path, number, f"query {name!r} again (first at line {first})"
                    )
            elif name:
                lines.append(line)
        if name:
            self._add(name, start, lines)

    def _add(self, name: str, line: int, lines: list[str]) -> None:
        described = _COMMENT.match(lines[0]) if lines else None
        description = described.group(1).strip() if described else ""
        body = lines[1:] if described else lines
        while body and (not body[-1].strip() or body[-1].lstrip().startswith("--")):
            body.pop()  # a comment after the last statement heads what follows
        if not any(s.strip() and not s.lstrip().startswith("--") for s in body):
            raise QueryFileError(self._path, line, f"query {name!r} has no SQL")
        text = "\n".join(body).strip()
        self._queries[name] = Query(name, description, text, line)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def names(self) -> list[str]:
        """The queries' names, in file order."""
        return list(self._queries)

    def query(self, name: str) -> Query:
        try:
            return self._queries[name]
        except KeyError:
            raise AttributeError(f"{self._path}: no query named {name!r}") from None

    def __getattr__(self, name: str) -> str:
        """The SQL of query ``name``: ``Q.get_contract``."""
        return self.query(name).text


@functools.cache
def _load(path: Path) -> Queries:
    return Queries(path)


def load(module_file: str, name: str = "queries.sql") -> Queries:
    """The named queries of ``name`` beside ``module_file``, parsed once however many
    modules of the package load them."""
    return _load(Path(module_file).resolve().with_name(name))


_RESERVED = frozenset(dir(Queries))  # ``Q.path`` must not be a query's SQL
