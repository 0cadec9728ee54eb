"""SWIFT MT940, parsed here line by line: the SWIFT layer (tags, ``:61:`` statement lines,
balances) as the standard's field formats say, and what the banks put in ``:86:``.

- Tatra banka (SK) and other banks with structured ``:86:`` subfields ``?NN``: ``?20`` VS,
  ``?21`` SS, ``?22`` KS, ``?31`` counterparty account, ``?32``/``?33`` its name,
  ``?23``-``?29`` and ``?60``-``?63`` the message.
- Otherwise, for Czech and Slovak accounts, a regular expression over ``:86:`` finds
  ``VS 123``, ``VS:123`` or ``/VS123/SS45/KS0308``.
- Hungarian banks carry no symbols: Raiffeisen HU's ``:86:`` is bank reference /
  counterparty account / name / remittance lines; Sberbank HU uses ``:NS:`` subcodes
  (09 text, 15-16 name, 34 account).

Every statement (``:20:`` block) is checked against itself: opening balance (``:60F:``)
plus its movements must give the closing balance (``:62F:``), and ``:90D:``/``:90C:``
(number and sum of debits / credits), where a bank writes them, must count the same.

MT940 has no reliable movement id (Raiffeisen HU repeats one bank reference for several
movements), so ``bank_tx_id`` is the ``:61:`` bank reference when present, else a digest
of the movement and its occurrence within the statement (``StableIds``). The digest is of
the same fields, written the same way, as when the ``mt-940`` package read the SWIFT layer,
so a statement imported before gets the same ids again (``test_importers`` holds this for
every fixture).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from schemas.money import AmountError, parse_minor
from services.bank_import.formats.base import (
    EXPONENT,
    Bad,
    Collector,
    ImportOptions,
    StableIds,
    constant_symbol,
    country_of,
    money,
    reconcile,
    symbol,
    symbols_in_text,
)

_SUBFIELD = re.compile(r"\?(\d{2})")
_TAG = re.compile(r":([0-9]{2}[A-Z]?|NS):", re.ASCII)
# 6!n[4!n]2a[1!a]15d1!a3!c16x[//16x][34x], the type code 1!a3!c required (some banks write
# spaces for the entry date and in the type code, a longer bank reference, several
# supplementary lines)
_LINE61 = re.compile(
    r"(?P<value>[0-9]{6})(?P<entry>[0-9]{4}|\s{4})?(?P<mark>RC|RD|C|D)(?P<funds>[A-Z])?\n?"
    r"(?P<amount>[0-9,]{1,15})(?P<id>[A-Z][A-Z0-9 ]{3})"
    r"(?P<cref>(?:(?!//)[^\n]){0,16})(?://(?P<bref>[^\n]{0,23}))?(?:\n(?P<extra>[\s\S]*))?",
    re.ASCII,
)
_BALANCE = re.compile(r"(?P<mark>[CD])(?P<date>[0-9]{6})(?P<ccy>[A-Z]{3})(?P<amount>[0-9,]{1,15})")
_SUM = re.compile(r"(?P<count>[0-9]{1,5})(?P<ccy>[A-Z]{3})(?P<amount>[0-9,]{1,15})")
_YEAR_BOUNDARY_DAYS = 330  # an entry date this far from the value date is in the next year
SIGN = {"C": 1, "RD": 1, "D": -1, "RC": -1}  # RD: reversal of a debit, a credit entry


def looks_like(text: str) -> bool:
    return bool(re.search(r"^:20:", text, re.M)) and bool(re.search(r"^:(25|61):", text, re.M))


def decode(data: bytes, encoding: str | None) -> str:
    data = data.removeprefix(b"\xef\xbb\xbf")
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


@dataclass
class _Tag:
    name: str
    value: str
    line: int


@dataclass
class _Tx:
    line: int
    data: dict[str, Any]


@dataclass
class _Statement:
    line: int
    data: dict[str, Any] = field(default_factory=dict)
    txs: list[_Tx] = field(default_factory=list)
    opening: tuple[int, str, int] | None = None  # minor units, currency, line
    closing: tuple[int, str, int] | None = None
    sums: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # D/C: count, sum, line
    broken: bool = False  # a tag did not parse: the file is rejected for that, not its totals


def _tags(text: str, out: Collector) -> list[_Tag]:
    """The file's tags with the line each starts on. Blank lines and the SWIFT envelope's
    ``{1:...}`` / ``-}`` lines are not part of any tag."""
    tags: list[_Tag] = []
    open_tag = False
    for n, raw in enumerate(text.split("\n"), start=1):
        line = raw.replace("\r", "").rstrip()
        if not line or line.strip() == "-":
            continue
        if line.startswith("{") or line.strip() == "-}":
            open_tag = False
            continue
        m = _TAG.match(line)
        if m:
            tags.append(_Tag(m.group(1), line[m.end() :], n))
            open_tag = True
        elif open_tag:
            tags[-1].value += "\n" + line
        else:
            out.problem(n, Bad("MT940 tag", "a line starting with a tag such as :20:", line[:40]))
    for tag in tags:
        tag.value = tag.value.strip()
    return tags


def _amount(raw: str, currency: str, name: str) -> int:
    if raw.count(",") != 1 or raw.startswith(","):
        raise Bad(name, "an amount with a decimal comma such as 1234,50", raw)
    try:
        text = raw.replace(",", ".") + ("0" if raw.endswith(",") else "")  # "1000," is valid
        return parse_minor(text, EXPONENT.get(currency, 2), signed=False)
    except AmountError as e:
        raise Bad(name, e.expected, raw) from None


def _yymmdd(raw: str, name: str) -> date:
    try:
        return date(2000 + int(raw[0:2]), int(raw[2:4]), int(raw[4:6]))
    except ValueError:
        raise Bad(name, "a date YYMMDD", raw) from None


def _balance(tag: _Tag) -> tuple[int, str, int]:
    m = _BALANCE.fullmatch(tag.value)
    name = f":{tag.name}: balance"
    if m is None:
        raise Bad(
            name,
            "C or D, a date YYMMDD, a currency and an amount (C261115EUR1000,00)",
            tag.value[:40],
        )
    _yymmdd(m["date"], f":{tag.name}: date")
    minor = _amount(m["amount"], m["ccy"], f":{tag.name}: amount")
    return (minor if m["mark"] == "C" else -minor), m["ccy"], tag.line


def _line61(tag: _Tag, currency: str | None) -> dict[str, Any]:
    m = _LINE61.fullmatch(tag.value)
    if m is None:
        raise Bad(
            ":61: statement line", "date YYMMDD[MMDD], C/D/RC/RD, amount, type code", tag.value[:60]
        )
    if currency is None:
        raise Bad(":60F: tag", "an opening balance (with the currency) before the first :61:", None)
    value_on = _yymmdd(m["value"], ":61: value date")
    entry = (m["entry"] or "").strip()
    booked_on = None
    if entry:
        try:
            booked_on = date(value_on.year, int(entry[:2]), int(entry[2:]))
        except ValueError:
            raise Bad(":61: entry date", "a date MMDD", entry) from None
        if value_on - booked_on >= timedelta(days=_YEAR_BOUNDARY_DAYS):
            booked_on = booked_on.replace(year=booked_on.year + 1)
        elif booked_on - value_on >= timedelta(days=_YEAR_BOUNDARY_DAYS):
            booked_on = booked_on.replace(year=booked_on.year - 1)
    minor = _amount(m["amount"], currency, ":61: amount")
    return {
        "date": value_on,
        "entry_date": booked_on,
        "status": m["mark"],
        "minor": SIGN[m["mark"]] * minor,
        "currency": currency,
        "id": m["id"],
        "customer_reference": m["cref"],
        "bank_reference": m["bref"],
        "extra_details": (m["extra"] or "").strip(),
    }


def _non_swift(value: str) -> dict[str, str]:
    found = {"non_swift": value}
    for line in value.split("\n"):
        if len(line) > 2 and line[:2].isdigit() and line[:2].isascii():
            found[f"non_swift_{line[:2]}"] = line[2:]
    return found


def _statements(tags: list[_Tag], out: Collector) -> list[_Statement]:
    stmts: list[_Statement] = []
    for tag in tags:
        if tag.name == "20":
            stmts.append(_Statement(tag.line))
            continue
        if not stmts:
            bad = Bad(f":{tag.name}: tag", "a :20: tag opening the statement first")
            out.problem(tag.line, bad)
            continue
        st = stmts[-1]
        try:
            if tag.name == "25":
                st.data["account_identification"] = tag.value
            elif tag.name in ("60F", "60M"):
                st.opening = _balance(tag)
            elif tag.name == "61":
                if st.closing is not None:
                    raise Bad(":61: tag", "statement lines before the closing balance :62F:")
                currency = st.opening[1] if st.opening else None
                st.txs.append(_Tx(tag.line, _line61(tag, currency)))
            elif tag.name == "86" and st.txs and st.closing is None:
                st.txs[-1].data.setdefault("transaction_details", tag.value)
            elif tag.name == "NS":
                target = st.txs[-1].data if st.txs and st.closing is None else st.data
                target.update(_non_swift(tag.value))
            elif tag.name in ("62F", "62M"):
                st.closing = _balance(tag)
            elif tag.name in ("90D", "90C"):
                m = _SUM.fullmatch(tag.value)
                if m is None:
                    raise Bad(
                        f":{tag.name}: tag",
                        "a count, a currency and an amount (2CZK998,00)",
                        tag.value[:40],
                    )
                total = _amount(m["amount"], m["ccy"], f":{tag.name}: amount")
                st.sums[tag.name[-1]] = (int(m["count"]), total, tag.line)
        except Bad as bad:
            out.problem(tag.line, bad)
            st.broken = True
    return stmts


def _check(st: _Statement, out: Collector) -> None:
    """The statement against itself: balances, and the :90D:/:90C: counts and sums."""
    for name, have in (
        (":25:", "account_identification" in st.data),
        (":60F:", st.opening),
        (":62F:", st.closing),
    ):
        if not have:
            out.problem(st.line, Bad(f"{name} tag", "one in the statement opened here", None))
    if st.opening is None or st.closing is None or st.broken:
        return
    if st.closing[1] != st.opening[1]:
        out.problem(st.closing[2], Bad(":62F: currency", st.opening[1], st.closing[1]))
        return
    amounts = [tx.data["minor"] for tx in st.txs]
    ccy = st.opening[1]
    for mark, (count, total, line) in st.sums.items():
        picked = [a for a in amounts if (a < 0) == (mark == "D")]
        if (count, total) != (len(picked), sum(abs(a) for a in picked)):
            out.problem(
                line,
                Bad(
                    f":90{mark}: {'debits' if mark == 'D' else 'credits'}",
                    f"{count} movement(s) summing {money(total, ccy)} as the bank wrote",
                    f"{len(picked)} summing {money(sum(abs(a) for a in picked), ccy)} in the file",
                ),
            )
    problem = reconcile(st.opening[0], amounts, st.closing[0], st.opening[1])
    if problem is not None:
        out.problem(st.closing[2], Bad(":62F: closing balance", *problem))


def parse(data: bytes, file: str, opts: ImportOptions, encoding: str | None = None) -> Collector:
    out = Collector(file)
    text = decode(data, encoding).replace("\r\n", "\n")
    if not looks_like(text):
        out.problem(1, Bad("MT940", "a statement with :20:, :25: and :61: tags", text[:20]))
        return out
    stmts = _statements(_tags(text, out), out)
    for st in stmts:
        _check(st, out)
    if out.problems:
        return out
    ids = StableIds()
    for st in stmts:
        if ident := st.data.get("account_identification"):
            out.accounts.add(opts.account or _account(str(ident)))
        for tx in st.txs:
            try:
                out.add(tx.line, **_movement({**st.data, **tx.data}, opts, ids))
            except Bad as bad:
                out.problem(tx.line, bad)
    return out


def _movement(d: dict[str, Any], opts: ImportOptions, ids: StableIds) -> dict[str, object]:
    ident = d.get("account_identification")
    if not ident:
        raise Bad(":25:", "our account identification", None)
    account = opts.account or _account(str(ident))
    currency: str = d["currency"]
    minor: int = d["minor"]
    status = d["status"]
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
