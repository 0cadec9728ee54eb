"""SWIFT MT940, on top of the ``mt-940`` package for the SWIFT layer (tags, :61: lines,
balances); what the banks put in ``:86:`` is ours to read.

- Tatra banka (SK) and other banks with structured ``:86:`` subfields ``?NN``: ``?20`` VS,
  ``?21`` SS, ``?22`` KS, ``?31`` counterparty account, ``?32``/``?33`` its name,
  ``?23``-``?29`` and ``?60``-``?63`` the message.
- Otherwise, for Czech and Slovak accounts, a regular expression over ``:86:`` finds
  ``VS 123``, ``VS:123`` or ``/VS123/SS45/KS0308``.
- Hungarian banks carry no symbols: Raiffeisen HU's ``:86:`` is bank reference /
  counterparty account / name / remittance lines; Sberbank HU uses ``:NS:`` subcodes
  (09 text, 15-16 name, 34 account).

MT940 has no reliable movement id (Raiffeisen HU repeats one bank reference for several
movements), so ``bank_tx_id`` is the ``:61:`` bank reference when present, else a digest
of the movement and its occurrence within the statement (``StableIds``).
"""

from __future__ import annotations

import re
import warnings
from datetime import date
from typing import Any

import mt940

from services.bank_import.formats.base import (
    Bad,
    Collector,
    ImportOptions,
    StableIds,
    constant_symbol,
    country_of,
    minor_units,
    symbol,
    symbols_in_text,
)

_SUBFIELD = re.compile(r"\?(\d{2})")
_TAG61 = re.compile(r"^:61:", re.M)


def looks_like(text: str) -> bool:
    return bool(re.search(r"^:20:", text, re.M)) and bool(re.search(r"^:(25|61):", text, re.M))


def decode(data: bytes, encoding: str | None) -> str:
    if encoding:
        return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1250", errors="replace")


def subfields(text: str) -> dict[str, str]:
    parts = _SUBFIELD.split(text.replace("\n", ""))
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def _account(ident: str) -> str:
    # "UBRTHUHB/123456789150ABCDEF002/HUF" (BIC/account/currency) -> the account
    parts = ident.split("/")
    if len(parts) == 3 and len(parts[2]) == 3 and parts[2].isalpha():
        return parts[1]
    return ident.strip()


def parse(data: bytes, file: str, opts: ImportOptions, encoding: str | None = None) -> Collector:
    out = Collector(file)
    text = decode(data, encoding).replace("\r\n", "\n")
    lines_61 = [text.count("\n", 0, m.start()) + 1 for m in _TAG61.finditer(text)]
    if not looks_like(text):
        out.problem(1, Bad("MT940", "a statement with :20:, :25: and :61: tags", text[:20]))
        return out
    # One Transactions object per statement (:20: block), so each movement keeps the
    # account of its own statement.
    starts = [m.start() for m in re.finditer(r"^:20:", text, re.M)]
    txs: list[tuple[dict[str, Any], Any]] = []
    for begin, end in zip(starts, [*starts[1:], len(text)], strict=True):
        block_line = text.count("\n", 0, begin) + 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stmts = mt940.models.Transactions()
                stmts.parse(text[begin:end])
        except Exception as e:  # the package raises plain exceptions for malformed tags
            out.problem(block_line, Bad("MT940", "valid SWIFT tags", f"{type(e).__name__}: {e}"))
            continue
        txs.extend((stmts.data, tx) for tx in stmts)
    if out.problems:
        return out
    if len(txs) != len(lines_61):
        out.problem(
            None,
            Bad(
                ":61:",
                "every :61: line to be a valid statement line",
                f"{len(txs)} of {len(lines_61)} parsed",
            ),
        )
        return out
    ids = StableIds()
    for (stmt, tx), line in zip(txs, lines_61, strict=True):
        try:
            out.add(line, **_movement({**stmt, **tx.data}, opts, ids))
        except Bad as bad:
            out.problem(line, bad)
    return out


def _movement(d: dict[str, Any], opts: ImportOptions, ids: StableIds) -> dict[str, object]:
    ident = d.get("account_identification")
    if not ident:
        raise Bad(":25:", "our account identification", None)
    account = opts.account or _account(str(ident))
    amount = d.get("amount")
    if amount is None:
        raise Bad(":61: amount", "an amount", None)
    currency = str(amount.currency)
    minor = minor_units(amount.amount, currency)
    status = d.get("status")
    if status not in ("C", "D", "RC", "RD"):
        raise Bad(":61: mark", "C, D, RC or RD", status)
    value_on: date = d["date"]
    booked_on: date = d.get("entry_date") or value_on
    country = opts.country or country_of(
        str(ident).split("/")[0] if "/" in str(ident) else str(ident), currency
    )
    details = d.get("transaction_details") or ""
    vs = ss = ks = counter = name = message = None
    if "non_swift_09" in d or "non_swift_15" in d:  # Sberbank HU :NS: subcodes
        message = d.get("non_swift_09")
        name = " ".join(x for x in (d.get("non_swift_15"), d.get("non_swift_16")) if x) or None
        counter = d.get("non_swift_34")
    elif "?" in details:
        sub = subfields(details)
        if country != "HU":
            vs = _sym(sub.get("20"), "VS")
            ss = _sym(sub.get("21"), "SS")
            ks = constant_symbol(re.sub(r"\D", "", sub.get("22", "")), strict=False)
        counter = sub.get("31") or None
        name = " ".join(sub[k] for k in ("32", "33") if sub.get(k)) or None
        keys = [f"{n:02d}" for n in (*range(23, 30), *range(60, 64))]
        message = " ".join(sub[k] for k in keys if sub.get(k)) or None
    elif country == "HU" and details:
        rows = [r.strip() for r in details.split("\n")]
        if len(rows) >= 3 and rows[1].replace(" ", "").isdigit():
            counter, name = rows[1], rows[2] or None
            message = "".join(rows[3:]).strip() or None
        else:
            message = " ".join(r for r in rows if r) or None
    else:
        message = " ".join(details.split()) or None
    if country != "HU" and vs is None and ss is None:
        found = symbols_in_text(details)
        vs, ss, ks = found["vs"], found["ss"], ks or found["ks"]
    message = message or d.get("extra_details") or None
    ref = d.get("bank_reference")
    bank_tx_id = (
        ref.strip()
        if ref and ref.strip() and ref.strip() != "NONREF"
        else ids.make(
            "mt940",
            value_on,
            booked_on,
            status,
            minor,
            currency,
            d.get("id"),
            d.get("customer_reference"),
            d.get("extra_details"),
            details,
            d.get("non_swift"),
        )
    )
    return {
        "account": account,
        "bank_tx_id": bank_tx_id,
        "booked_on": booked_on,
        "value_on": value_on,
        "amount_minor": minor,
        "currency": currency,
        "vs": vs,
        "ss": ss,
        "ks": ks,
        "counterparty_account": counter,
        "counterparty_name": name,
        "message": message,
    }


def _sym(raw: str | None, name: str) -> str | None:
    if not raw:
        return None
    return symbol(re.sub(rf"^/?{name}[:\s]*", "", raw.strip(), flags=re.I), name, strict=False)
