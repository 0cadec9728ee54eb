"""The rules a contact's address passes before anything stores it (pure, no I/O).

An address goes into an e-mail header (``To``) or an SMS gateway's request, so it is
checked where it enters, not where it is used: a CR/LF in an e-mail address is a header
injection, and an address nobody can deliver to would only fail later, for good, after
the customer should have been told something.

- No control characters anywhere in a contact (C0/C1 controls, line and paragraph
  separators, invisible format characters such as bidi overrides, lone surrogates); the
  error names the character and its position in the value (1-based).
- E-mail: the syntax of RFC 5321/5322 as email-validator checks it, with no DNS lookup
  (validation must not depend on the network); the normalised form is stored.
- Phone: parsed by phonenumbers, numbers without a country prefix taken as Czech; Slovak
  and Hungarian numbers carry their prefixes (+421, +36). Stored in E.164 (+420602000001),
  the form SMS gateways expect.

Each raises ``ContactError`` (a ValueError, so pydantic reports it with the field's path).
"""

from __future__ import annotations

import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

DEFAULT_REGION = "CZ"
# Unicode categories no address or name may hold: controls, format characters (bidi
# overrides, zero-width), surrogates, and the line and paragraph separators.
_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NAMES = {"\r": "CR", "\n": "LF", "\t": "TAB", "\x00": "NUL", "\u2028": "LINE SEPARATOR"}


class ContactError(ValueError):
    pass


def plain_text(value: str) -> str:
    """``value`` if it holds no control or invisible format character."""
    for i, char in enumerate(value, start=1):
        if unicodedata.category(char) in _FORBIDDEN:
            name = _NAMES.get(char) or unicodedata.name(char, "control character")
            raise ContactError(f"character {i} is U+{ord(char):04X} ({name}), not allowed here")
    return value


def email_address(value: str) -> str:
    """The normalised address (the domain in lower case, Unicode in NFC)."""
    plain_text(value)
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ContactError(f"not an e-mail address: {exc}") from None


def phone_number(value: str, region: str = DEFAULT_REGION) -> str:
    """The number in E.164; without a prefix it is taken as a number of ``region``."""
    plain_text(value)
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ContactError(f"not a phone number: {exc}") from None
    if number.extension:
        raise ContactError("a phone number with an extension cannot receive SMS")
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_number(number) or "any country"
        hint = " (Slovak and Hungarian numbers need +421 or +36)" if where == region else ""
        raise ContactError(f"not a valid phone number of {where}{hint}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
