"""SQL in the open stays open: every named query says in one line what it is for, every one
is used by the services' code, every query the code asks for exists, and every ``.sql`` file
of named queries is loaded by some module. A broken file is refused at load, naming its line.

Uses are found in the code's syntax: ``Q.<name>`` where ``Q`` is bound to a file by
``Q = sql.load(__file__[, "file.sql"])`` or imported from a module that binds it."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

from services.invoicing import service as invoicing
from services.notify import service as notify
from services.payments import ledger as payments
from services.runtime import sql
from services.runtime.sql import Queries, QueryFileError

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"
LINE = 100  # the longest description line, "-- " included, like a line of code


def _query_files() -> list[Path]:
    return sorted(
        p
        for p in SERVICES.rglob("*.sql")
        if "migrations" not in p.relative_to(SERVICES).parts
        and any(line.startswith("-- name:") for line in p.read_text("utf-8").splitlines())
    )


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _loaded_by(node: ast.AST, module: Path) -> Path | None:
    """The file ``node`` loads, if it is ``sql.load(__file__[, "name.sql"])``."""
    if not (isinstance(node, ast.Call) and node.args):
        return None
    func = node.func
    named = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    first = node.args[0]
    if named != "load" or not (isinstance(first, ast.Name) and first.id == "__file__"):
        return None
    name = "queries.sql"
    if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
        name = str(node.args[1].value)
    return module.with_name(name)


def _uses() -> dict[Path, set[str]]:
    """Per queries file, the names the code asks of it (the syntax of every module under
    services/: what only a test asks for is not used). An import inside a function binds
    in that function only."""
    trees = {p: ast.parse(p.read_text("utf-8"), str(p)) for p in SERVICES.rglob("*.py")}
    own: dict[str, dict[str, Path]] = defaultdict(dict)  # module -> name -> queries file
    for path, tree in trees.items():
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, loaded = node.targets[0], _loaded_by(node.value, path)
                if loaded and isinstance(target, ast.Name):
                    own[_module_name(path)][target.id] = loaded
    used: dict[Path, set[str]] = defaultdict(set)

    def scope(body: list[ast.stmt], outer: dict[str, Path]) -> None:
        bound = dict(outer)
        inner: list[ast.AST] = []
        todo: list[ast.AST] = list(body)
        while todo:  # this scope's nodes; a nested function is a scope of its own
            node = todo.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                inner.append(node)
                continue
            if isinstance(node, ast.ImportFrom) and node.module in own:
                for alias in node.names:
                    if alias.name in own[node.module]:
                        bound[alias.asname or alias.name] = own[node.module][alias.name]
            todo.extend(ast.iter_child_nodes(node))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                inner.append(node)
        for node in inner:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                scope(node.body, bound)
            elif isinstance(node, ast.Lambda):
                scope([ast.Expr(node.body)], bound)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id in bound:
                    used[bound[node.value.id]].add(node.attr)

    for path, tree in trees.items():
        scope(tree.body, own.get(_module_name(path), {}))
    return used


FILES = _query_files()
USED = _uses()


def test_the_query_files_are_found() -> None:
    found = {str(p.relative_to(ROOT)) for p in FILES}
    assert "services/runtime/queries.sql" in found
    assert {f"services/{s}/queries.sql" for s in ("payments", "dunning", "invoicing")} <= found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SERVICES)))
def test_every_named_query_says_in_one_line_what_it_is_for(path: Path) -> None:
    lines = path.read_text("utf-8").splitlines()
    queries = sql.Queries(path)
    wrong = []
    for q in map(queries.query, queries.names):
        line = lines[q.line]  # the one after the name
        if not q.description:
            wrong.append(f"{path.name}:{q.line + 1}: {q.name} has no '-- ' line after its name")
        elif len(line) > LINE or not q.description.endswith("."):
            wrong.append(
                f"{path.name}:{q.line + 1}: {q.name}'s description is not one sentence of at"
                f" most {LINE} characters ending with '.': {line!r}"
            )
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SERVICES)))
def test_every_named_query_is_used_and_every_query_used_exists(path: Path) -> None:
    queries = sql.Queries(path)
    asked = USED.get(path, set()) - sql._RESERVED
    assert asked, f"{path}: no module loads it (sql.load(__file__, ...)) and asks a query of it"
    dead = sorted(set(queries.names) - asked)
    assert not dead, f"{path}: queries no code in services/ runs: {dead}"
    missing = sorted(asked - set(queries.names))
    assert not missing, f"{path}: the code asks for queries it does not have: {missing}"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "queries.sql"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_query_keeps_its_description_apart_from_its_sql(tmp_path: Path) -> None:
    q = Queries(
        _write(
            tmp_path,
            "-- A heading.\n\n-- name: one\n-- What one is for.\n-- Why, at length.\n"
            "SELECT 1;\n\n-- The next section.\n\n-- name: two\nSELECT 2;\n",
        )
    )
    assert q.names == ["one", "two"]
    assert q.query("one").description == "What one is for."
    assert q.one == "-- Why, at length.\nSELECT 1;"  # the heading after it is not its SQL
    assert q.query("two").description == "" and q.two == "SELECT 2;"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "-- name: one\n-- For one.\nSELECT 1;\n\n-- name: one\n-- Again.\nSELECT 2;\n",
            r"queries.sql:5: query 'one' again \(first at line 1\)",
        ),
        ("-- name: one\n-- For one.\n\n-- name: two\n-- For two.\nSELECT 2;\n", r":1: .*no SQL"),
        ("-- name: names\n-- Clashes.\nSELECT 1;\n", r":1: query 'names': a name the loader"),
    ],
    ids=["a name twice", "a block without SQL", "a name the loader has"],
)
def test_a_broken_query_file_is_refused_naming_its_line(
    tmp_path: Path, text: str, error: str
) -> None:
    with pytest.raises(QueryFileError, match=error):
        Queries(_write(tmp_path, text))


def test_an_unknown_query_names_the_file() -> None:
    with pytest.raises(AttributeError, match=r"runtime/queries.sql: no query named 'nope'"):
        _ = sql.load(str(SERVICES / "runtime" / "sql.py")).nope


def _insert_columns(query: str) -> list[str]:
    found = re.search(r"INSERT INTO \w+\s*\(([^)]*)\)", query)
    assert found, query
    return [c.strip() for c in found.group(1).split(",")]


@pytest.mark.parametrize(
    ("queries", "name", "row"),
    [
        (payments.Q, "insert_bank_tx", payments.BankTx),
        (payments.Q, "insert_matched_txs", payments.BankTx),
        (notify.Q, "insert_delivery", notify.NewDelivery),
        (invoicing.Q, "upsert_contract", invoicing.ContractRow),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_typed_row_is_its_statements_columns_in_order(
    queries: Queries, name: str, row: type[tuple[object, ...]]
) -> None:
    """A row built by name goes in by position: its fields must be the statement's columns
    ($1..$n) in their order, so no value lands in its neighbour's column."""
    query = getattr(queries, name)
    fields = list(row._fields)  # type: ignore[attr-defined]
    assert _insert_columns(query) == fields
    assert {int(n) for n in re.findall(r"\$(\d+)", query)} == set(range(1, len(fields) + 1))


_STATEMENT = re.compile(
    r"^\s*(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\w+\s.*\bSET\s|DELETE\s+FROM\s|WITH\s+\w+\s+AS\b"
    r"|CREATE\s|DROP\s|ALTER\s|TRUNCATE\s|LOCK\s|NOTIFY\s|LISTEN\s|COPY\s|SET\s+\w+\s+TO\s)",
    re.DOTALL,
)
# DDL takes no parameters: these name what they create or drop, formatted in (db.py says why)
DYNAMIC_DDL = {
    ("services/runtime/db.py", 'CREATE SCHEMA IF NOT EXISTS "{}"'),
    ("services/runtime/db.py", 'DROP DATABASE IF EXISTS "{}" WITH (FORCE)'),
    ("services/runtime/db.py", 'CREATE DATABASE "{}"'),
}


def _literal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def test_no_sql_statement_is_written_in_the_services_python() -> None:
    """Statements live in the .sql files, runtime's too; what must be formatted (DDL naming
    a schema or database) is listed above."""
    found = []
    for path in sorted(SERVICES.rglob("*.py")):
        where = str(path.relative_to(ROOT))
        nodes = list(ast.walk(ast.parse(path.read_text("utf-8"), where)))
        parts = {id(v) for n in nodes if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in nodes:
            text = None if id(node) in parts else _literal(node)
            if text and _STATEMENT.match(text) and (where, text.strip()) not in DYNAMIC_DDL:
                found.append(f"{where}:{getattr(node, 'lineno', '?')}: {text.strip()[:60]!r}")
    assert not found, "\n".join(found)
