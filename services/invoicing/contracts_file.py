"""Read contracts (with contacts and subscriber identifiers) from a JSON or CSV file.

``records`` streams: it reads, parses and validates one record at a time, so a file of a
million contracts is read in the memory of a record (and of a set of the contract numbers
seen, to refuse a repeat). An error names the file, the record (JSON index and line, or
CSV line), the field and what was expected. The loader applies the records in one
transaction, so a bad record anywhere refuses the whole file.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.events import ContractService, ContractUpserted
from services.invoicing.billed import OneOff, Service, Terms, legacy_tariff
from services.invoicing.domain import DueRule
from services.runtime import networks

READ_SIZE = 1 << 20  # characters of a JSON file read at a time


class ContractsFileError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomerAddress(_Strict):
    street: str = Field(min_length=1, max_length=200)
    building_number: str = Field(default="", max_length=50)
    city: str = Field(min_length=1, max_length=200)
    postal_code: str = Field(min_length=1, max_length=20)


class FileOneOff(OneOff):
    """A one-off item in a contracts file: it goes on the contract's next invoice. Its
    ``key`` names it within the contract, so loading the file again adds it once."""

    key: str = Field(min_length=1, max_length=100)


class Billing(_Strict):
    """What a contracts file says of a contract for invoicing only (not in the
    contract.upserted event): the services billed, one-off items, and the customer's
    address and numbers as documents state them."""

    services: tuple[Service, ...] | None = None
    prices_include_vat: bool = True
    one_off_items: tuple[FileOneOff, ...] = ()
    address: CustomerAddress | None = None
    company_id: str | None = Field(default=None, min_length=1, max_length=30)
    tax_id: str | None = Field(default=None, min_length=1, max_length=30)
    vat_id: str | None = Field(default=None, pattern=r"^(?:[A-Z]{2}|EL)[0-9A-Z+*.]{2,13}$")


BILLING_KEYS = frozenset(Billing.model_fields)


@dataclass(frozen=True)
class ContractRecord:
    contract: ContractUpserted
    due_rule: DueRule
    where: str = ""  # the file and record, for errors found later (overlapping addresses)
    # the subscribers' addresses and prefixes, parsed: (field[i], network as cidr text)
    networks: tuple[tuple[str, str], ...] = ()
    # its services (None: its monthly price is one tariff service) and one-off items
    terms: Terms | None = None
    one_offs: tuple[FileOneOff, ...] = ()
    customer: dict[str, Any] | None = None  # the customer as documents name it

    def customer_data(self) -> dict[str, Any]:
        return self.customer or {"name": self.contract.customer_name, "address": None}


def read(path: Path) -> list[ContractRecord]:
    """The whole file's records (for small files and tests; ``records`` streams)."""
    return list(records(path))


def records(path: Path) -> Iterator[ContractRecord]:
    """The file's records, validated, in file order; raises ContractsFileError at the
    first bad one or at a contract that appears twice."""
    if not path.exists():
        raise ContractsFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        items = _json_items(path)
    elif suffix == ".csv":
        items = _csv_items(path)
    else:
        raise ContractsFileError(f"{path}: expected a .json or .csv file")
    seen: set[str] = set()
    for item, where in items:
        record = _record(item, where)
        if record.contract.contract in seen:
            raise ContractsFileError(
                f"{where}: contract {record.contract.contract} appears twice in the file"
            )
        seen.add(record.contract.contract)
        yield record


def _json_items(path: Path) -> Iterator[tuple[Any, str]]:
    """The contracts of ``[...]`` or ``{"contracts": [...], ...}``, one at a time."""
    with path.open(encoding="utf-8") as fh:
        reader = _JsonReader(fh, path)
        first = reader.peek()
        if first == "[":
            reader.take()
            yield from reader.array("contracts")
        elif first == "{":
            reader.take()
            found = False
            while reader.peek() != "}":
                key = reader.value()
                if not isinstance(key, str):
                    raise reader.error("expected a key in double quotes")
                reader.expect(":")
                if key == "contracts" and reader.peek() == "[":
                    reader.take()
                    found = True
                    yield from reader.array("contracts")
                else:
                    reader.value()  # another key's value, or "contracts" not a list
                if reader.peek() == ",":
                    reader.take()
                elif reader.peek() != "}":
                    raise reader.error("expected ',' or '}'")
            reader.take()
            if not found:
                raise ContractsFileError(
                    f"{path}: expected a list of contracts or {{'contracts': [...]}}"
                )
        else:
            raise ContractsFileError(
                f"{path}: expected a list of contracts or {{'contracts': [...]}}"
            )
        if reader.peek() != "":
            raise reader.error("extra data after the contracts")


_SPACE = re.compile(r"[ \t\n\r]*")


def _maybe_cut(value: Any, left: int) -> bool:
    """A number this close to the buffer's end may have been cut short."""
    return isinstance(value, int | float) and not isinstance(value, bool) and left < 64


class _JsonReader:
    """JSON values read one at a time from a file, a buffer at a time; errors name the
    line. A value cut by the buffer's end is read again with the next part of the file."""

    def __init__(self, fh: IO[str], path: Path) -> None:
        self.fh = fh
        self.path = path
        self.buf = ""
        self.pos = 0
        self.line = 1  # the line of buf[0]
        self.counted = (0, 1)  # a position in buf and its line: lines are counted onwards
        self.eof = False
        self.decoder = json.JSONDecoder()

    def _more(self) -> None:
        """Drop what was read, and read on: as much again as is left, so a value that
        spans many reads is decoded a logarithmic number of times, not once a read."""
        self.line = self._line(self.pos)
        self.counted = (0, self.line)
        chunk = self.fh.read(max(READ_SIZE, len(self.buf) - self.pos))
        self.eof = not chunk
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0

    def peek(self) -> str:
        """The next character that is not white space ("" at the end of the file)."""
        while True:
            end = _SPACE.match(self.buf, self.pos)
            assert end is not None
            self.pos = end.end()
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos : self.pos + 1]
            self._more()

    def take(self) -> None:
        self.pos += 1

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"expected {char!r}")
        self.take()

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # cut by the buffer's end (a literal like `tr|ue` fails a few characters
                # before it, an unterminated string where it starts), or broken
                cut = exc.pos >= len(self.buf) - 16 or exc.msg.startswith("Unterminated")
                if self.eof or not cut:
                    raise ContractsFileError(
                        f"{self.path}: line {self._line(exc.pos)}: invalid JSON: {exc.msg}"
                    ) from None
                self._more()
                continue
            if not self.eof and _maybe_cut(value, len(self.buf) - end):
                self._more()  # a number at the buffer's end may go on: 12|3, 1|e5
                continue
            self.pos = end
            return value

    def array(self, name: str) -> Iterator[tuple[Any, str]]:
        """After '[': each element with where it is (its line, ``name[i]``)."""
        i = 0
        if self.peek() == "]":
            self.take()
            return
        while True:
            self.peek()
            where = f"{self.path}: line {self._line(self.pos)}: {name}[{i}]"
            yield self.value(), where
            i += 1
            after = self.peek()
            self.take()
            if after == "]":
                return
            if after != ",":
                self.pos -= 1
                raise self.error("expected ',' or ']'")

    def _line(self, pos: int) -> int:
        at, line = self.counted
        if pos < at:
            at, line = 0, self.line
        line += self.buf.count("\n", at, pos)
        self.counted = (pos, line)
        return line

    def error(self, what: str) -> ContractsFileError:
        return ContractsFileError(f"{self.path}: line {self._line(self.pos)}: invalid JSON: {what}")


def _csv_items(path: Path) -> Iterator[tuple[Any, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        required = {"contract", "customer_name", "currency", "monthly_fee"}
        missing = required - set(reader.fieldnames or [])
        if missing:
            raise ContractsFileError(f"{path}: line 1: missing columns {sorted(missing)}")
        for row in reader:
            where = f"{path}: line {reader.line_num}"
            yield _csv_to_item(row, where), where


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
    given = {k: item.pop(k) for k in list(item) if k in BILLING_KEYS}
    if "services" in given and "monthly_fee_minor" not in item:
        item["monthly_fee_minor"] = 0  # the services say what is billed
    try:
        contract = ContractUpserted.model_validate(item)
        billing = Billing.model_validate(given)
    except ValidationError as exc:
        raise _refused(exc, item, where) from None
    terms = None
    if billing.services is not None:
        terms = Terms(prices_include_vat=billing.prices_include_vat, services=billing.services)
    elif not billing.prices_include_vat:
        raise ContractsFileError(
            f"{where}: field 'prices_include_vat' of contract {contract.contract}: only with "
            "'services' (a monthly_fee_minor is the price a consumer pays, VAT included)"
        )
    keys = [o.key for o in billing.one_off_items]
    if len(set(keys)) != len(keys):
        raise ContractsFileError(
            f"{where}: field 'one_off_items' of contract {contract.contract}: two items "
            "with one key"
        )
    own = [i for i, o in enumerate(billing.one_off_items) if o.invoice == "own"]
    if own:
        raise ContractsFileError(
            f"{where}: field 'one_off_items[{own[0]}].invoice' of contract "
            f"{contract.contract}: 'own' is issued at once by `billing contracts add-item "
            "--own-invoice`; a file's items go on the next invoice"
        )
    customer = None
    if billing.address or billing.company_id or billing.tax_id or billing.vat_id:
        customer = {
            "name": contract.customer_name,
            "address": (
                {**billing.address.model_dump(), "country": contract.country}
                if billing.address
                else None
            ),
            "company_id": billing.company_id,
            "tax_id": billing.tax_id,
            "vat_id": billing.vat_id,
        }
    try:
        found = networks.subscriber_networks(contract.subscribers.model_dump())
    except networks.NetworkError as exc:
        entry, _, reason = str(exc).partition(": ")
        raise ContractsFileError(f"{where}: field 'subscribers.{entry}': {reason}") from None
    billed = terms or legacy_tariff(contract.monthly_fee_minor, contract.language)
    contract = contract.model_copy(update={"services": _told(billed)})
    return ContractRecord(
        contract, rule, where, tuple(found), terms, billing.one_off_items, customer
    )


def _told(terms: Terms) -> list[ContractService]:
    """The services as contract.upserted tells them (the customer zone shows them): what
    each is, its price per period, from and until when it is billed."""
    return [
        ContractService(
            kind=s.kind,
            description=s.description,
            unit_price_minor=s.unit_price_minor,
            quantity=s.quantity,
            every=s.every,
            starts_on=s.starts_on,
            ends_on=s.ends_on,
            prepaid=s.prepaid,
        )
        for s in terms.services
    ]


def _refused(exc: ValidationError, item: dict[str, Any], where: str) -> ContractsFileError:
    """The first refusal of a record, naming the file, record, field and contract."""
    err = exc.errors()[0]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
    number = item.get("contract")
    of = f" of contract {number}" if isinstance(number, str) and number else ""
    why = err["msg"].removeprefix("Value error, ")
    return ContractsFileError(
        f"{where}: field {field.lstrip('.')!r}{of}: {why} (got {err.get('input')!r})"
    )
