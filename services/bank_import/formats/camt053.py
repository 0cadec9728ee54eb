"""ISO 20022 camt.053 (BkToCstmrStmt), versions 001.02 and later.

One ``Ntry`` is one booking; its ``TxDtls`` are the movements inside it (a batch booking
has several). Only booked entries (``Sts`` BOOK) are imported: pending ones may still
change. The movement id is the bank's ``AcctSvcrRef`` (of the transaction, else of the
entry), else ``NtryRef``; with several transactions and no own reference, the entry
reference plus the transaction's position.

Symbols follow the convention of the account's country (from the IBAN, the servicer's
BIC, or the currency):
- CZ: VS in ``EndToEndId`` (digits), and ``VS:`` / ``SS:`` / ``KS:`` references in
  ``RmtInf/Strd/CdtrRefInf/Ref``; a structured reference wins over EndToEndId.
- SK: ``/VS123/SS456/KS0308`` in ``EndToEndId`` (also accepted in the references).
- HU: no symbols; the invoice number travels in the remittance text (``Ustrd``), which
  pairing reads (rule 3).

Each statement is checked against itself where the bank gives the figures: opening
(``OPBD``, else ``PRCD``) plus the booked entries = closing (``CLBD``); the counts and sums
of ``TxsSummry`` (all entries, credits, debits, net); a batch entry's transactions sum to
the entry. Amounts are ISO 20022 decimals: digits, up to 5 decimals, no sign (the sign is
``CdtDbtInd``), at most 18 digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

from lxml import etree

from services.bank_import.formats.base import (
    Bad,
    Collector,
    Country,
    ImportOptions,
    country_of,
    iso_date,
    minor_units,
    money,
    reconcile,
    symbol,
    symbols_in_text,
)

_AMOUNT = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,5})?", re.ASCII)

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _strip_namespaces(root: etree._Element) -> None:
    """camt versions differ only in the namespace: drop it once, then plain paths work with
    lxml's own (C) path lookup."""
    for el in root.iter():
        tag = el.tag
        if isinstance(tag, str) and tag.startswith("{"):
            el.tag = tag.split("}", 1)[1]


class _X:
    def __init__(self, el: etree._Element) -> None:
        self.el = el

    def all(self, path: str) -> Iterator[_X]:
        return (_X(n) for n in self.el.iterfind(path))

    def one(self, path: str) -> _X | None:
        found = self.el.find(path)
        return None if found is None else _X(found)

    def text(self, path: str) -> str | None:
        value = self.el.findtext(path)
        if value is None:
            return None
        return value.strip() or None

    @property
    def line(self) -> int | None:
        return self.el.sourceline  # type: ignore[no-any-return]


def looks_like(data: bytes) -> bool:
    head = data[:2048]
    return b"camt.053" in head or b"BkToCstmrStmt" in data[:8192]


def parse(data: bytes, file: str, opts: ImportOptions) -> Collector:
    out = Collector(file)
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as e:
        out.problem(e.lineno, Bad("XML", "well-formed XML", str(e.msg)))
        return out
    except (ValueError, LookupError) as e:  # e.g. an encoding lxml does not know
        out.problem(1, Bad("XML", "a well-formed XML document", str(e)[:80]))
        return out
    _strip_namespaces(root)
    doc = _X(root)
    if _local(root.tag) != "Document" or doc.one("BkToCstmrStmt") is None:
        out.problem(1, Bad("root", "Document/BkToCstmrStmt (camt.053)", _local(root.tag)))
        return out
    stmts = list(doc.all("BkToCstmrStmt/Stmt"))
    if not stmts:
        out.problem(root.sourceline, Bad("Stmt", "at least one statement", "none"))
    for stmt in stmts:
        _statement(stmt, out, opts)
    return out


def _statement(stmt: _X, out: Collector, opts: ImportOptions) -> None:
    iban = stmt.text("Acct/Id/IBAN")
    other = stmt.text("Acct/Id/Othr/Id")
    account = opts.account or iban or other
    if not account:
        out.problem(stmt.line, Bad("Stmt/Acct/Id", "our account (IBAN or Othr/Id)", None))
        return
    out.accounts.add(account)
    acct_ccy = stmt.text("Acct/Ccy")
    bic = stmt.text("Acct/Svcr/FinInstnId/BIC") or stmt.text("Acct/Svcr/FinInstnId/BICFI")
    country = opts.country or country_of(iban or bic, acct_ccy)
    problems = len(out.problems)
    booked: list[tuple[int, str]] = []  # each booked entry's signed minor units, currency
    for entry in stmt.all("Ntry"):
        try:
            found = _entry(entry, account, acct_ccy, country, out)
            if found is not None:
                booked.append(found)
        except Bad as bad:
            out.problem(entry.line, bad)
    if len(out.problems) == problems:
        _check(stmt, booked, out)


def _signed(node: _X, path: str) -> tuple[int, str]:
    amount, ccy = _amount(node, path)
    indicator = node.text("CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        raise Bad(f"{path}/../CdtDbtInd", "CRDT or DBIT", indicator)
    minor = minor_units(amount, ccy, path)
    return (minor if indicator == "CRDT" else -minor), ccy


def _check(stmt: _X, booked: list[tuple[int, str]], out: Collector) -> None:
    """The statement's own figures, where it gives them, against its booked entries."""
    balances: dict[str, tuple[int, str, int | None]] = {}
    try:
        for bal in stmt.all("Bal"):
            code = bal.text("Tp/CdOrPrtry/Cd") or bal.text("Tp/CdOrPrtry/Prtry")
            if code in ("OPBD", "PRCD", "CLBD") and code not in balances:
                balances[code] = (*_signed(bal, "Amt"), bal.line)
    except Bad as bad:
        out.problem(stmt.line, Bad(f"Bal/{bad.field}", bad.expected, bad.got))
        return
    opening = balances.get("OPBD") or balances.get("PRCD")
    closing = balances.get("CLBD")
    amounts = [minor for minor, _ in booked]
    if opening is not None and closing is not None:
        ccy = opening[1]
        if closing[1] != ccy or any(c != ccy for _, c in booked):
            out.problem(closing[2], Bad("Bal/Amt/@Ccy", f"every amount in {ccy}", closing[1]))
            return
        problem = reconcile(opening[0], amounts, closing[0], ccy)
        if problem is not None:
            out.problem(closing[2], Bad("Bal CLBD (closing booked balance)", *problem))
    summary = stmt.one("TxsSummry")
    if summary is None:
        return
    ccy = booked[0][1] if booked else (opening or closing or (0, "CZK", None))[1]
    for path, picked in (
        ("TtlNtries", amounts),
        ("TtlCdtNtries", [a for a in amounts if a > 0]),
        ("TtlDbtNtries", [a for a in amounts if a < 0]),
    ):
        node = summary.one(path)
        if node is None:
            continue
        count, total = node.text("NbOfNtries"), node.text("Sum")
        found_total = sum(abs(a) for a in picked)
        if count is not None and count != str(len(picked)):
            out.problem(
                node.line,
                Bad(f"TxsSummry/{path}/NbOfNtries", count, f"{len(picked)} booked entries"),
            )
        if total is not None and _minor(total, ccy, f"TxsSummry/{path}/Sum", out) not in (
            None,
            found_total,
        ):
            out.problem(
                node.line,
                Bad(
                    f"TxsSummry/{path}/Sum",
                    f"{total} {ccy} as the bank wrote",
                    f"{money(found_total, ccy)} in the entries",
                ),
            )


def _minor(text: str, ccy: str, name: str, out: Collector) -> int | None:
    try:
        if not _AMOUNT.fullmatch(text):
            raise Bad(name, "an unsigned decimal amount", text[:40])
        return minor_units(text, ccy, name)
    except Bad as bad:
        out.problem(None, bad)
        return None


def _date(node: _X | None, path: str) -> date:
    if node is None:
        raise Bad(path, "a date", None)
    return iso_date(node.text("Dt") or node.text("DtTm"), path)


def _amount(node: _X, path: str) -> tuple[Decimal, str]:
    amt = node.one(path)
    if amt is None or not amt.el.text:
        raise Bad(path, "an amount", None)
    ccy = amt.el.get("Ccy")
    if not ccy:
        raise Bad(f"{path}/@Ccy", "a currency", None)
    text = amt.el.text.strip()
    if not _AMOUNT.fullmatch(text):
        raise Bad(
            path,
            "a decimal amount of digits, no sign (CdtDbtInd says which way), at most 18 "
            "digits and 5 decimals",
            text[:40],
        )
    return Decimal(text), ccy


def _entry(
    entry: _X, account: str, acct_ccy: str | None, country: Country, out: Collector
) -> tuple[int, str] | None:
    """Adds a booked entry's movements; returns its signed minor units and currency."""
    status = entry.text("Sts") or entry.text("Sts/Cd")
    if status is None:
        raise Bad("Ntry/Sts", "BOOK, PDNG or INFO", None)
    if status != "BOOK":
        return None
    indicator = entry.text("CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        raise Bad("Ntry/CdtDbtInd", "CRDT or DBIT", indicator)
    sign = 1 if indicator == "CRDT" else -1
    amount, ccy = _amount(entry, "Amt")
    entry_minor = sign * minor_units(amount, ccy, "Ntry/Amt")
    booked_on = _date(entry.one("BookgDt"), "Ntry/BookgDt")
    value_node = entry.one("ValDt")
    value_on = _date(value_node, "Ntry/ValDt") if value_node is not None else booked_on
    entry_ref = entry.text("AcctSvcrRef") or entry.text("NtryRef")
    txs = list(entry.all("NtryDtls/TxDtls"))
    if not txs:
        if not entry_ref:
            raise Bad("Ntry", "AcctSvcrRef or NtryRef to identify the movement", None)
        out.add(
            entry.line,
            **_movement(None, account, entry_ref, booked_on, value_on, sign, amount, ccy, country),
        )
        return entry_minor, ccy
    parts = 0
    for i, tx in enumerate(txs, start=1):
        tx_amount, tx_ccy = amount, ccy
        if len(txs) > 1:
            found = tx.one("AmtDtls/TxAmt/Amt") or tx.one("Amt")
            if found is None:
                raise Bad("TxDtls/AmtDtls/TxAmt/Amt", "each transaction's amount", None)
            tx_amount, tx_ccy = _amount(tx, "AmtDtls/TxAmt/Amt" if tx.one("AmtDtls") else "Amt")
            if tx_ccy != ccy:
                raise Bad("TxDtls/AmtDtls/TxAmt/Amt/@Ccy", f"the entry's currency {ccy}", tx_ccy)
        parts += minor_units(tx_amount, tx_ccy, "TxDtls/Amt")
        ref = tx.text("Refs/AcctSvcrRef")
        if ref is None:
            if entry_ref is None:
                raise Bad("Ntry", "AcctSvcrRef or NtryRef to identify the movement", None)
            ref = entry_ref if len(txs) == 1 else f"{entry_ref}/{i}"
        try:
            data = _movement(
                tx, account, ref, booked_on, value_on, sign, tx_amount, tx_ccy, country
            )
            out.add(tx.line, **data)
        except Bad as bad:
            out.problem(tx.line, bad)
    if parts != abs(entry_minor):
        raise Bad(
            "Ntry/Amt",
            f"the sum of its transactions, {money(parts, ccy)}",
            money(abs(entry_minor), ccy),
        )
    return entry_minor, ccy


def _movement(
    tx: _X | None,
    account: str,
    ref: str,
    booked_on: date,
    value_on: date,
    sign: int,
    amount: Decimal,
    ccy: str,
    country: Country,
) -> dict[str, object]:
    vs = ss = ks = None
    name = counter = message = None
    if tx is not None:
        vs, ss, ks = _symbols(tx, country)
        side = "Dbtr" if sign > 0 else "Cdtr"
        name = tx.text(f"RltdPties/{side}/Nm") or tx.text(f"RltdPties/{side}/Pty/Nm")
        name = name or tx.text(f"RltdPties/{side}Acct/Nm")  # Raiffeisenbank CZ puts it here
        counter = tx.text(f"RltdPties/{side}Acct/Id/IBAN") or tx.text(
            f"RltdPties/{side}Acct/Id/Othr/Id"
        )
        bank = tx.text(f"RltdAgts/{side}Agt/FinInstnId/Othr/Id")
        if counter and bank and "/" not in counter and not counter[:2].isalpha():
            counter = f"{counter}/{bank}"
        ustrd = [u.el.text.strip() for u in tx.all("RmtInf/Ustrd") if u.el.text]
        message = " ".join(ustrd) or tx.text("AddtlTxInf")
    return {
        "account": account,
        "bank_tx_id": ref,
        "booked_on": booked_on,
        "value_on": value_on,
        "amount_minor": sign * minor_units(amount, ccy, "Amt"),
        "currency": ccy,
        "vs": vs,
        "ss": ss,
        "ks": ks,
        "counterparty_account": counter,
        "counterparty_name": name,
        "message": message,
    }


def _symbols(tx: _X, country: Country) -> tuple[str | None, str | None, str | None]:
    if country == "HU":
        return None, None, None
    refs = " ".join(r.el.text or "" for r in tx.all("RmtInf/Strd/CdtrRefInf/Ref"))
    e2e = tx.text("Refs/EndToEndId")
    found = symbols_in_text(refs)
    if e2e and e2e.upper() != "NOTPROVIDED":
        if "/" in e2e or any(k in e2e.upper() for k in ("VS", "SS", "KS")):
            in_e2e = symbols_in_text(e2e)
            for k, v in in_e2e.items():
                found[k] = found[k] or v
        elif country == "CZ" and found["vs"] is None:
            found["vs"] = symbol(e2e, "vs", strict=False)
    return found["vs"], found["ss"], found["ks"]
