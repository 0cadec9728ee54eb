"""Fio banka's API statement (``.../transactions.json``).

Each transaction is a map of ``columnN`` entries (``{"value": ..., "name": ..., "id": N}``
or null): 22 movement id, 0 date, 1 amount (signed), 14 currency, 2 counterparty account,
3 its bank code, 10 its name, 4 KS, 5 VS, 6 SS, 16 message for the recipient, 7 the
payer's own note, 8 movement type. Numbers are read as decimals, never floats (and never
as Python ints, whose conversion refuses more than 4,300 digits). The statement must add
up: ``info.openingBalance`` plus the movements is ``info.closingBalance``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from services.bank_import.formats.base import (
    Bad,
    Collector,
    ImportOptions,
    constant_symbol,
    iso_date,
    minor_units,
    reconcile,
    symbol,
)


def looks_like(data: bytes) -> bool:
    return b'"accountStatement"' in data[:4096]


def _col(tx: dict[str, Any], n: int) -> Any:
    cell = tx.get(f"column{n}")
    if cell is None:
        return None
    if not isinstance(cell, dict) or "value" not in cell:
        raise Bad(
            f"column{n}", "an object with 'value' or null", json.dumps(cell, default=str)[:60]
        )
    return cell["value"]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def parse(data: bytes, file: str, opts: ImportOptions) -> Collector:
    out = Collector(file)
    try:
        doc = json.loads(data.decode("utf-8-sig"), parse_float=Decimal, parse_int=Decimal)
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        line = getattr(e, "lineno", None)
        out.problem(line, Bad("JSON", "a Fio API JSON document", str(e)[:120]))
        return out
    except RecursionError:
        out.problem(None, Bad("JSON", "a Fio API JSON document", "nested too deeply"))
        return out
    stmt = doc.get("accountStatement") if isinstance(doc, dict) else None
    if not isinstance(stmt, dict) or not isinstance(stmt.get("info"), dict):
        out.problem(None, Bad("accountStatement.info", "an object", None))
        return out
    info = stmt["info"]
    if opts.account:
        account = opts.account
    elif info.get("accountId") and info.get("bankId"):
        account = f"{info['accountId']}/{info['bankId']}"
    else:
        out.problem(None, Bad("accountStatement.info.accountId", "our account", None))
        return out
    out.accounts.add(account)
    tx_list = stmt.get("transactionList") or {}
    txs = tx_list.get("transaction") if isinstance(tx_list, dict) else None
    if txs is None:
        txs = []
    if not isinstance(txs, list):
        out.problem(None, Bad("transactionList.transaction", "a list", type(txs).__name__))
        return out
    for i, tx in enumerate(txs):
        where = f"transaction[{i}]"
        try:
            if not isinstance(tx, dict):
                raise Bad(where, "an object", type(tx).__name__)
            out.add(None, **_movement(tx, account, info.get("currency")))
        except Bad as bad:
            out.problem(None, Bad(f"{where}.{bad.field}", bad.expected, bad.got))
    if not out.problems:
        _check(info, out)
    return out


def _check(info: dict[str, Any], out: Collector) -> None:
    """Opening balance + movements = closing balance, when the statement gives both."""
    opening, closing = info.get("openingBalance"), info.get("closingBalance")
    if opening is None or closing is None:
        return
    currency = str(info.get("currency") or (out.movements[0].currency if out.movements else ""))
    try:
        for name, value in (("openingBalance", opening), ("closingBalance", closing)):
            if not isinstance(value, Decimal):
                raise Bad(f"accountStatement.info.{name}", "a number", repr(value)[:40])
        open_minor = minor_units(opening, currency, "accountStatement.info.openingBalance")
        close_minor = minor_units(closing, currency, "accountStatement.info.closingBalance")
    except Bad as bad:
        out.problem(None, bad)
        return
    problem = reconcile(open_minor, [m.amount_minor for m in out.movements], close_minor, currency)
    if problem is not None:
        out.problem(None, Bad("accountStatement.info.closingBalance", *problem))


def _movement(tx: dict[str, Any], account: str, default_ccy: str | None) -> dict[str, object]:
    tx_id = _col(tx, 22)
    if tx_id is None:
        raise Bad("column22", "the movement id", None)
    amount = _col(tx, 1)
    if not isinstance(amount, Decimal):
        raise Bad("column1", "a number", repr(amount)[:40])
    currency = _text(_col(tx, 14)) or default_ccy
    if not currency:
        raise Bad("column14", "a currency", None)
    booked_on = iso_date(_text(_col(tx, 0)), "column0")
    counter = _text(_col(tx, 2))
    bank = _text(_col(tx, 3))
    if counter and bank and bank != "0000" and "/" not in counter:
        counter = f"{counter}/{bank}"
    return {
        "account": account,
        "bank_tx_id": str(tx_id),
        "booked_on": booked_on,
        "value_on": booked_on,
        "amount_minor": minor_units(amount, currency, "column1"),
        "currency": currency,
        "vs": symbol(_text(_col(tx, 5)), "column5 (VS)", strict=False),
        "ss": symbol(_text(_col(tx, 6)), "column6 (SS)", strict=False),
        "ks": constant_symbol(_text(_col(tx, 4)), strict=False),
        "counterparty_account": counter,
        "counterparty_name": _text(_col(tx, 10)),
        "message": _text(_col(tx, 16)) or _text(_col(tx, 7)),
    }
