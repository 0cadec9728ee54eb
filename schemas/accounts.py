"""Bank account numbers: is this one well formed, and do its check digits match?

- An IBAN (ISO 13616): python-stdnum's ``iban`` checks the mod-97 check digits and the
  country's BBAN layout. A Czech or Slovak IBAN carries a domestic number (bank code,
  prefix, number), whose own check digits are checked as below.
- A Czech domestic number ``[prefix-]number/bank``: python-stdnum's ``cz.bankaccount``
  (the mod-11 rule on prefix and number, and the bank code in ČNB's list of codes).
- The mod-11 rule itself, for the forms the library does not take (a Slovak bank code, a
  number without its bank code as GPC writes a counterparty of bank 0000): ČNB decree
  169/2011 Sb. (on the rules for forming a bank account number), whose annex weights the
  ten digits of the number 6, 3, 7, 9, 10, 5, 8, 4, 2, 1 (the prefix's six digits by the
  last six of them) and asks the sum to divide by 11. Slovak banks number accounts by the
  same rule, the common Czechoslovak scheme both countries kept.

Anything else (a Hungarian GIRO number, an anonymised test account, a bare number without
a bank code) is of a form this module cannot check: ``account_problem`` says nothing about
it rather than guessing.
"""

from __future__ import annotations

import re

from stdnum import iban as stdnum_iban
from stdnum.cz import bankaccount as cz_bankaccount
from stdnum.exceptions import InvalidChecksum, InvalidComponent, ValidationError

_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}", re.ASCII)
_DOMESTIC = re.compile(r"(?:([0-9]{1,6})-)?([0-9]{1,10})(?:/([0-9]{4}))?", re.ASCII)
_WEIGHTS = (6, 3, 7, 9, 10, 5, 8, 4, 2, 1)
# Slovak bank codes (NBS register) of the banks most accounts are at, none of them also a
# Czech code: a domestic SK number with one of these is checked by the mod-11 rule only.
_SK_BANKS = frozenset(
    {
        "0200",
        "0720",
        "0900",
        "1100",
        "1111",
        "3000",
        "5200",
        "5600",
        "5900",
        "6500",
        "7300",
        "7500",
        "8330",
        "8360",
    }
)


def mod11_ok(digits: str) -> bool:
    """The ČNB rule for a prefix (up to 6 digits) or a number (up to 10)."""
    return sum(w * int(d) for w, d in zip(_WEIGHTS, digits.zfill(10), strict=True)) % 11 == 0


def account_problem(text: str) -> str | None:
    """What is wrong with an account number, or None when it is valid or of a form that no
    check applies to. IBANs may be written in groups of four (spaces are ignored)."""
    compact = text.replace(" ", "").upper()
    if _IBAN.fullmatch(compact):
        return _iban_problem(compact)
    m = _DOMESTIC.fullmatch(text.strip())
    if m is None:
        return None
    prefix, number, bank = m.group(1), m.group(2), m.group(3)
    if bank is None and prefix is None:
        return None  # a bare number: whose it is, and by what rule, cannot be told
    return _domestic_problem(prefix or "", number, bank)


def _iban_problem(compact: str) -> str | None:
    try:
        stdnum_iban.validate(compact)
    except InvalidChecksum:
        return "an IBAN whose check digits match (mod 97)"
    except ValidationError:
        return f"an IBAN in the layout of {compact[:2]}"
    if compact[:2] in ("CZ", "SK"):  # bank (4), prefix (6), number (10)
        bban = compact[4:]
        if not (mod11_ok(bban[4:10]) and mod11_ok(bban[10:20])):
            return f"an IBAN whose domestic {compact[:2]} account number passes its mod-11 check"
    return None


def _domestic_problem(prefix: str, number: str, bank: str | None) -> str | None:
    if len(number.lstrip("0")) < 2:
        return "an account number of at least two significant digits"
    if not (mod11_ok(prefix) and mod11_ok(number)):
        return "an account number whose prefix and number pass the mod-11 check (ČNB)"
    if bank is None or bank in _SK_BANKS:
        return None
    try:
        cz_bankaccount.validate(f"{prefix}-{number}/{bank}" if prefix else f"{number}/{bank}")
    except InvalidComponent:
        return f"a bank code of the Czech or Slovak register, not {bank}"
    except ValidationError:
        return "a Czech account number [prefix-]number/bank"
    return None
