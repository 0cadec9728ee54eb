"""Read contracts (with contacts and subscriber identifiers) from a JSON or CSV file.

The whole file is validated before anything is written; an error names the file, the
record (JSON index or CSV line), the field and what was expected.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas.events import ContractUpserted
from services.invoicing.domain import DueRule


class ContractsFileError(ValueError):
    pass


@dataclass(frozen=True)
class ContractRecord:
    contract: ContractUpserted
    due_rule: DueRule


def read(path: Path) -> list[ContractRecord]:
    if not path.exists():
        raise ContractsFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise ContractsFileError(f"{path}: expected a .json or .csv file")


def _read_json(path: Path) -> list[ContractRecord]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ContractsFileError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
    items = doc.get("contracts") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise ContractsFileError(f"{path}: expected a list of contracts or {{'contracts': [...]}}")
    records = [_record(item, f"{path}: contracts[{i}]") for i, item in enumerate(items)]
    _check_unique(path, records)
    return records


def _read_csv(path: Path) -> list[ContractRecord]:
    records = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        required = {"contract", "customer_name", "currency", "monthly_fee"}
        missing = required - set(reader.fieldnames or [])
        if missing:
            raise ContractsFileError(f"{path}: line 1: missing columns {sorted(missing)}")
        for row in reader:
            where = f"{path}: line {reader.line_num}"
            records.append(_record(_csv_to_item(row, where), where))
    _check_unique(path, records)
    return records


def _csv_to_item(row: dict[str, str], where: str) -> dict[str, Any]:
    def split(name: str) -> list[str]:
        return [v for v in (row.get(name) or "").split() if v]

    try:
        fee = int((Decimal(row["monthly_fee"].replace(",", ".")) * 100).to_integral_exact())
    except (InvalidOperation, ValueError):
        raise ContractsFileError(
            f"{where}: field 'monthly_fee': expected an amount like 499.00, "
            f"got {row['monthly_fee']!r}"
        ) from None
    language = row.get("language") or "cs"
    item: dict[str, Any] = {
        "contract": row["contract"].strip(),
        "customer_name": row["customer_name"],
        "language": language,
        "country": row.get("country") or "CZ",
        "currency": row["currency"],
        "monthly_fee_minor": fee,
        "active": (row.get("active") or "true").lower() in ("1", "true", "yes"),
        "exempt": (row.get("exempt") or "false").lower() in ("1", "true", "yes"),
        "policy": row.get("policy") or None,
        "group": row.get("group") or None,
        "contacts": [],
        "subscribers": {"ipv4": split("ipv4"), "ipv6": split("ipv6"), "logins": split("login")},
    }
    if row.get("email") or row.get("phone"):
        item["contacts"] = [
            {
                "name": row["customer_name"],
                "email": row.get("email") or None,
                "phone": row.get("phone") or None,
                "language": language,
                "owner": True,
            }
        ]
    if row.get("due_day"):
        item["due"] = {"day_of_month": row["due_day"]}
    elif row.get("due_days"):
        item["due"] = {"days_after_issue": row["due_days"]}
    return item


def _record(item: Any, where: str) -> ContractRecord:
    if not isinstance(item, dict):
        raise ContractsFileError(f"{where}: expected an object")
    item = dict(item)
    due = item.pop("due", {"days_after_issue": 14})
    if not isinstance(due, dict) or len(due) != 1:
        raise ContractsFileError(
            f"{where}: field 'due': expected {{'day_of_month': N}} or {{'days_after_issue': N}}"
        )
    ((kind, value),) = due.items()
    try:
        rule = DueRule(kind, int(value))
    except (TypeError, ValueError) as exc:
        raise ContractsFileError(f"{where}: field 'due': {exc}") from None
    try:
        contract = ContractUpserted.model_validate(item)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ContractsFileError(
            f"{where}: field {field!r}: {err['msg']} (got {err.get('input')!r})"
        ) from None
    return ContractRecord(contract, rule)


def _check_unique(path: Path, records: list[ContractRecord]) -> None:
    seen: set[str] = set()
    for r in records:
        if r.contract.contract in seen:
            raise ContractsFileError(f"{path}: contract {r.contract.contract} appears twice")
        seen.add(r.contract.contract)
