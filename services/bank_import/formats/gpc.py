"""ABO / GPC: the Czech and Slovak banks' fixed-width statement (windows-1250).

Record 074 opens a statement (our account, balances, statement date); each 075 is one
movement; 076 carries extra identification we do not need; 078 and 079 that follow a 075
carry its message for the recipient (AV1-AV4, 35 characters each). Positions below are
1-based as the banks' documents number them.

075, from the format descriptions of Komerční banka, Česká spořitelna and Fio:
  4-19 our account, 20-35 counterparty account (6-digit prefix + 10-digit number),
  36-48 movement id, 49-60 amount in minor units, 61 posting code, 62-71 VS,
  72-81 counterparty bank code (74-77) and KS (78-81), 82-91 SS, 92-97 value date,
  98-117 counterparty name or note, 118 change code, 119-122 ISO numeric currency (Fio,
  Air Bank; other banks write their "data type" there), 123-128 posting date.

Posting codes. Komerční banka and most banks: 1 debit, 2 credit, 4 reversal of a debit
(money back to us), 5 reversal of a credit (money taken back). Česká spořitelna's
description swaps the reversals: 4 reversal of a credit, 5 reversal of a debit. The
variant is a property of the bank, not the file, so it is an import option.

Each statement is checked against its 074 header: old balance + its movements = new
balance, and the debit and credit turnovers (46-60 old, 61-75 new balance, 76-90 debit
and 91-105 credit turnover, each 14 digits and a sign) are the sums of its movements.
The formats' descriptions let a reversal either lower the turnover of the side it
reverses (hence the turnovers' signs) or count on the side its money moves; both are
taken. A file that does not add up is rejected, naming both figures; when it would add up
under the other posting-code variant, the message says so.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

from services.bank_import.formats.base import (
    NUMERIC_CURRENCY,
    Bad,
    Collector,
    ImportOptions,
    StableIds,
    constant_symbol,
    ddmmyy,
    money,
    reconcile,
    symbol,
)

# posting code -> sign of the movement for our account
SIGNS = {
    "kb": {"1": -1, "2": 1, "4": 1, "5": -1},
    "cs": {"1": -1, "2": 1, "4": -1, "5": 1},
}
HEADER_MIN = 105  # Air Bank's header stops at 112; the balances end at 105
ITEM_MIN = 97  # through the value date


def decode(data: bytes) -> str:
    """UTF-8 when the file is (a BOM only says which text follows if the rest agrees: some
    exports put one before windows-1250), else windows-1250."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8") if _looks_utf8(data) else data.decode("cp1250")
    except UnicodeDecodeError:
        return data.decode("cp1250", errors="replace")


def _looks_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not data.isascii()


def account_number(digits: str) -> str:
    """16 GPC digits -> ``prefix-number`` (no leading zeros, prefix only when set)."""
    prefix, number = digits[:6].lstrip("0"), digits[6:].lstrip("0") or "0"
    return f"{prefix}-{number}" if prefix else number


def _digits(line: str, start: int, end: int, name: str) -> str:
    raw = line[start - 1 : end]
    if len(raw) != end - start + 1 or not (raw.isascii() and raw.isdigit()):
        raise Bad(f"{name} (positions {start}-{end})", f"{end - start + 1} digits", raw)
    return raw


class _Statement:
    def __init__(
        self,
        account: str,
        booked_on: date | None,
        figures: tuple[int, int, int, int] = (0, 0, 0, 0),
        line: int | None = None,
    ) -> None:
        self.account = account
        self.booked_on = booked_on
        # old balance, new balance, debit turnover, credit turnover (signed minor units)
        self.figures = figures
        self.line = line
        self.items: list[tuple[str, int]] = []  # posting code, amount (unsigned)
        self.broken = False  # an item did not parse: the file is rejected for that


def _signed(line: str, start: int, sign_at: int) -> int:
    return (-1 if line[sign_at - 1] == "-" else 1) * int(line[start - 1 : start + 13])


def parse_header(line: str) -> _Statement:
    if len(line) < HEADER_MIN:
        raise Bad("074 header", f"at least {HEADER_MIN} characters", f"{len(line)} characters")
    account = _digits(line, 4, 19, "account")
    ddmmyy(line[39:45], "old balance date (positions 40-45)")
    for start, sign_at, name in ((46, 60, "old balance"), (61, 75, "new balance")):
        _digits(line, start, start + 13, name)
        if line[sign_at - 1] not in "+-":
            raise Bad(f"{name} sign (position {sign_at})", "'+' or '-'", line[sign_at - 1])
    for start, sign_at, name in ((76, 90, "debit turnover"), (91, 105, "credit turnover")):
        _digits(line, start, start + 13, name)
        if line[sign_at - 1] not in "0+-":
            raise Bad(f"{name} sign (position {sign_at})", "'0', '+' or '-'", line[sign_at - 1])
    booked_on = None
    if len(line) >= 114 and line[108:114].strip():
        booked_on = ddmmyy(line[108:114], "statement date (positions 109-114)")
    figures = (
        _signed(line, 46, 60),
        _signed(line, 61, 75),
        _signed(line, 76, 90),
        _signed(line, 91, 105),
    )
    return _Statement(account_number(account), booked_on, figures)


def check(stmt: _Statement, signs: dict[str, int], variant: str, out: Collector, ccy: str) -> None:
    """The statement against its header: balances and turnovers (see the module's doc)."""
    if stmt.broken:
        return
    old, new, debit_t, credit_t = stmt.figures
    amounts = [signs[code] * amount for code, amount in stmt.items]
    problem = reconcile(old, amounts, new, ccy)
    if problem is not None:
        other = "cs" if variant == "kb" else "kb"
        flipped = [SIGNS[other][code] * amount for code, amount in stmt.items]
        hint = (
            f" (it adds up with --gpc-variant {other})"
            if reconcile(old, flipped, new, ccy) is None
            else ""
        )
        out.problem(stmt.line, Bad("new balance (positions 61-75)", problem[0] + hint, problem[1]))
        return
    by_side = (-sum(a for a in amounts if a < 0), sum(a for a in amounts if a > 0))
    back_to_us = next(code for code in ("4", "5") if signs[code] > 0)  # reverses a debit

    def total(codes: tuple[str, ...]) -> int:
        return sum(a for c, a in stmt.items if c in codes)

    taken_back = "5" if back_to_us == "4" else "4"  # reverses a credit
    by_code = (total(("1",)) - total((back_to_us,)), total(("2",)) - total((taken_back,)))
    if (debit_t, credit_t) not in (by_side, by_code):
        out.problem(
            stmt.line,
            Bad(
                "turnovers (positions 76-105)",
                f"debits {money(debit_t, ccy)} and credits {money(credit_t, ccy)} as written",
                f"debits {money(by_side[0], ccy)} and credits {money(by_side[1], ccy)} in "
                f"{len(amounts)} movement(s)",
            ),
        )


def parse(data: bytes, file: str, opts: ImportOptions) -> Collector:
    out = Collector(file)
    ids = StableIds()
    signs = SIGNS[opts.gpc_variant]
    stmt: _Statement | None = None
    stmts: list[_Statement] = []
    pending: dict[str, object] | None = None
    pending_line = 0
    messages: list[str] = []
    header_bad = False
    trusted = False

    def finish() -> None:
        nonlocal pending, messages, trusted
        if pending is not None:
            if messages:
                pending["message"] = " ".join(m for m in messages if m)
            if trusted and not messages:
                out.add_checked(pending_line, pending)
            else:
                out.add(pending_line, **pending)
        pending, messages = None, []

    for n, line in enumerate(decode(data).splitlines(), start=1):  # line ends removed
        if not line or line.isspace():
            continue
        kind = line[:3]
        try:
            if kind == "074":
                finish()
                header_bad = True  # until it parses: its items are still checked
                stmt = None  # a broken header's items count for no earlier statement
                stmt = parse_header(line)
                stmt.line = n
                out.accounts.add(opts.account or stmt.account)
                stmts.append(stmt)
                header_bad = False
            elif kind == "075":
                finish()
                if stmt is None and not header_bad:
                    raise Bad("record", "a 074 header before the first 075 item", kind)
                fast = _fast_item(line, stmt or _Statement("", None), signs, opts, ids)
                pending = fast or _item(line, stmt or _Statement("", None), signs, opts, ids)
                trusted = fast is not None
                pending_line = n
                if stmt is not None:
                    stmt.items.append((line[60], abs(int(str(pending["amount_minor"])))))
            elif kind in ("078", "079"):
                if pending is None:
                    raise Bad("record", f"{kind} only after a 075 item", kind)
                body = line[3:]
                messages.extend(body[i : i + 35].strip() for i in range(0, len(body), 35))
            elif kind == "076":
                if pending is None:
                    raise Bad("record", "076 only after a 075 item", kind)
            else:
                raise Bad("record type (positions 1-3)", "074, 075, 076, 078 or 079", kind)
        except Bad as bad:
            out.problem(n, bad)
            if kind == "075":
                pending, messages = None, []
                if stmt is not None:
                    stmt.broken = True
    finish()
    if stmt is None and not header_bad:
        out.problem(None, Bad("file", "a 074 statement header", "no 074 record"))
    if not out.problems:
        ccy = out.movements[0].currency if out.movements else opts.currency or "CZK"
        for st in stmts:
            check(st, signs, opts.gpc_variant, out, ccy)
    return out


# A well-formed 075 in one regular expression: the common case costs one C call. Anything it
# does not match goes through ``_item`` field by field, which names what is wrong.
_FAST = re.compile(
    r"075(\d{16})(\d{16})(\d{13})(\d{12})([1245])(\d{10})\d\d(\d{4})(\d{4})(\d{10})(\d{6})",
    re.ASCII,  # \d: 0-9 only, not every script's digits (int() would read those too)
)


@lru_cache(maxsize=4096)
def _date(raw: str, name: str) -> date:
    return ddmmyy(raw, name)


@lru_cache(maxsize=4096)
def _account(digits: str) -> str:
    return account_number(digits)


def _fast_item(
    line: str, stmt: _Statement, signs: dict[str, int], opts: ImportOptions, ids: StableIds
) -> dict[str, object] | None:
    m = _FAST.match(line)
    if m is None or len(line) > 128:
        return None
    own, counter, tx_id, amount, code, vs, bank, ks, ss, value = m.groups()
    name, ccy, posted = line[97:117], line[118:122], line[122:128]
    if posted and not ((posted.isascii() and posted.isdigit()) or posted.isspace()):
        return None
    try:
        value_on = _date(value, "value date (positions 92-97)")
        booked_on = stmt.booked_on or value_on
        if posted and posted != "000000" and posted.strip():
            booked_on = _date(posted, "posting date (positions 123-128)")
    except Bad:
        return None  # the slow path reports it
    own_account = _account(own)
    counterparty = None
    if counter != "0" * 16:
        counterparty = _account(counter) + (f"/{bank}" if bank != "0000" else "")
    ks_value = None if ks == "0000" else ks
    return {
        "account": opts.account or (own_account if own != "0" * 16 else stmt.account),
        "bank_tx_id": tx_id.lstrip("0")
        or ids.make("gpc", value_on, code, int(amount), vs, ss, ks, counter, name.strip()),
        "booked_on": booked_on,
        "value_on": value_on,
        "amount_minor": signs[code] * int(amount),
        "currency": NUMERIC_CURRENCY.get(ccy or "") or opts.currency or "CZK",
        "vs": vs.lstrip("0") or None,
        "ss": ss.lstrip("0") or None,
        "ks": ks_value,
        "counterparty_account": counterparty,
        "counterparty_name": name.strip() or None,
        "message": None,
    }


def _item(
    line: str, stmt: _Statement, signs: dict[str, int], opts: ImportOptions, ids: StableIds
) -> dict[str, object]:
    if len(line) < ITEM_MIN:
        raise Bad("075 item", f"at least {ITEM_MIN} characters", f"{len(line)} characters")
    if len(line) > 128:
        raise Bad("075 item", "at most 128 characters", f"{len(line)} characters")
    own = account_number(_digits(line, 4, 19, "account"))
    counter = _digits(line, 20, 35, "counterparty account")
    tx_id = _digits(line, 36, 48, "movement id")
    amount = int(_digits(line, 49, 60, "amount"))
    code = line[60]
    if code not in signs:
        raise Bad("posting code (position 61)", "1, 2, 4 or 5", code)
    vs = symbol(_digits(line, 62, 71, "VS"), "VS (positions 62-71)")
    bank_ks = _digits(line, 72, 81, "bank code and KS")
    ks = constant_symbol(bank_ks[6:10])
    bank = bank_ks[2:6]
    ss = symbol(_digits(line, 82, 91, "SS"), "SS (positions 82-91)")
    value_on = ddmmyy(line[91:97], "value date (positions 92-97)")
    name = line[97:117].strip() or None
    currency_code = line[118:122] if len(line) >= 122 else ""
    currency = NUMERIC_CURRENCY.get(currency_code) or opts.currency or "CZK"
    booked_on = stmt.booked_on or value_on
    if len(line) >= 128 and line[122:128].strip() not in ("", "000000"):
        booked_on = ddmmyy(line[122:128], "posting date (positions 123-128)")
    counterparty = None
    if int(counter):
        counterparty = account_number(counter) + (f"/{bank}" if int(bank) else "")
    account = opts.account or (own if int(own.replace("-", "")) else stmt.account)
    bank_tx_id = tx_id.lstrip("0") or ids.make(
        "gpc", value_on, code, amount, vs, ss, ks, counter, name
    )
    return {
        "account": account,
        "bank_tx_id": bank_tx_id,
        "booked_on": booked_on,
        "value_on": value_on,
        "amount_minor": signs[code] * amount,
        "currency": currency,
        "vs": vs,
        "ss": ss,
        "ks": ks,
        "counterparty_account": counterparty,
        "counterparty_name": name,
        "message": None,
    }
