"""Payment QR codes for the notice page and the invoices. Pure.

- Czech "QR Platba" (SPAYD 1.0, Czech Banking Association): ``SPD*1.0*ACC:<IBAN>*AM:...``,
  read by every Czech banking app, for CZK.
- Slovak "PAY by square" (Slovak Banking Association): tab-separated payment fields,
  a CRC32, LZMA1 raw compression, a 4-byte header, then base32hex; read by Slovak banking
  apps, for EUR to a Slovak account.
- EPC QR ("GiroCode", EPC069-12 version 002): line-separated SEPA credit transfer, for EUR
  to an account outside Slovakia; the symbols go in the remittance text as "/VS.../SS...".
- Hungarian MNB QR code, kind "HCT" (MNB's QR-kód útmutató of 2019-07-12): 17 fields
  each ended by a line feed, for HUF; read by Hungarian banking apps.
Each carries the account, amount and the symbols (and the due date where the format has
one), so the customer pays exactly what pairing expects. ``for_payment`` picks the code.
"""

from __future__ import annotations

import binascii
import lzma
import re
import unicodedata
from datetime import date, datetime
from decimal import Decimal

import segno

_CZ_ACCOUNT = re.compile(r"^(?:([0-9]{1,6})-)?([0-9]{2,10})/([0-9]{4})$")
_BASE32HEX = "0123456789ABCDEFGHIJKLMNOPQRSTUV"
_LZMA = [{"id": lzma.FILTER_LZMA1, "lc": 3, "lp": 0, "pb": 2, "dict_size": 128 * 1024}]


def _iban_check(country: str, bban: str) -> str:
    digits = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{98 - int(digits) % 97:02d}"


def iban(account: str) -> str:
    """Our account as an IBAN: given as one, or converted from Czech ``prefix-number/bank``."""
    compact = account.replace(" ", "").upper()
    if re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}", compact):
        return compact
    m = _CZ_ACCOUNT.match(account.strip())
    if m is None:
        raise ValueError(f"account {account!r}: expected an IBAN or prefix-number/bank")
    prefix, number, bank = m.group(1) or "0", m.group(2), m.group(3)
    bban = bank + prefix.rjust(6, "0") + number.rjust(10, "0")
    return f"CZ{_iban_check('CZ', bban)}{bban}"


def _ascii(text: str, limit: int) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[*\t\r\n]", " ", plain).strip()[:limit]


def spayd(
    account: str,
    amount_minor: int,
    currency: str,
    vs: str | None,
    ss: str | None,
    due: date | None = None,
    message: str = "",
    recipient: str = "",
) -> str:
    parts = [
        "SPD",
        "1.0",
        f"ACC:{iban(account)}",
        f"AM:{Decimal(amount_minor) / 100:.2f}",
        f"CC:{currency}",
    ]
    if due is not None:
        parts.append(f"DT:{due:%Y%m%d}")
    if message:
        parts.append(f"MSG:{_ascii(message, 60).upper()}")
    if recipient:
        parts.append(f"RN:{_ascii(recipient, 35).upper()}")
    if vs:
        parts.append(f"X-VS:{vs}")
    if ss:
        parts.append(f"X-SS:{ss}")
    return "*".join(parts)


def pay_by_square(
    account: str,
    amount_minor: int,
    currency: str,
    vs: str | None,
    ss: str | None,
    due: date,
    ks: str | None = None,
    message: str = "",
    beneficiary: str = "",
    bic: str = "",
    beneficiary_address: tuple[str, str] = ("", ""),
) -> str:
    fields = [
        "",  # invoice id
        "1",  # one payment
        "1",  # payment order
        f"{Decimal(amount_minor) / 100:.2f}",
        currency,
        f"{due:%Y%m%d}",
        vs or "",
        ks or "",
        ss or "",
        "",  # SEPA reference: the symbols above are used instead
        message[:140],
        "1",  # one bank account
        iban(account),
        bic,
        "0",  # no standing order
        "0",  # no direct debit
        beneficiary[:70],
        beneficiary_address[0][:70],
        beneficiary_address[1][:70],
    ]
    data = "\t".join(fields).encode()
    payload = binascii.crc32(data).to_bytes(4, "little") + data
    packed = lzma.compress(payload, format=lzma.FORMAT_RAW, filters=_LZMA)
    raw = b"\x00\x00" + len(payload).to_bytes(2, "little") + packed
    bits = len(raw) * 8
    value = int.from_bytes(raw, "big") << ((5 - bits % 5) % 5)
    n = (bits + 4) // 5
    return "".join(_BASE32HEX[(value >> (5 * (n - 1 - i))) & 31] for i in range(n))


def decode_pay_by_square(code: str) -> list[str]:
    """The fields of a PAY by square code (for tests and support)."""
    value = 0
    for ch in code:
        value = value << 5 | _BASE32HEX.index(ch)
    bits = len(code) * 5
    raw = (value >> (bits % 8)).to_bytes(bits // 8, "big")
    length = int.from_bytes(raw[2:4], "little")
    payload = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA).decompress(
        raw[4:], max_length=length
    )
    if binascii.crc32(payload[4:]).to_bytes(4, "little") != payload[:4]:
        raise ValueError("PAY by square: checksum mismatch")
    return payload[4:].decode().split("\t")


def svg(text: str, scale: int = 4) -> str:
    """The QR code as inline SVG (no image request: works inside the walled garden)."""
    qr = segno.make(text, error="m", micro=False)
    return qr.svg_inline(scale=scale, dark="#111", light="#fff")


def epc(
    account: str,
    amount_minor: int,
    beneficiary: str,
    remittance: str = "",
    bic: str = "",
) -> str:
    """An EPC QR payload (version 002, UTF-8, SEPA credit transfer) for an amount in EUR.
    Elements end at the last one given, as the guideline asks."""
    if not 1 <= amount_minor <= 99_999_999_999:
        raise ValueError(f"EPC QR: amount {amount_minor} out of 0.01..999999999.99 EUR")
    if not beneficiary.strip():
        raise ValueError("EPC QR: the beneficiary's name is required")
    elements = [
        "BCD",
        "002",
        "1",
        "SCT",
        bic,
        beneficiary.strip()[:70],
        iban(account),
        f"EUR{Decimal(amount_minor) / 100:.2f}",
        "",  # purpose code
        "",  # structured creditor reference: the symbols go in the text instead
        remittance[:140],
    ]
    while elements[-1] == "":
        elements.pop()
    return "\n".join(elements)


def mnb_hct(
    account: str,
    amount_minor: int,
    beneficiary: str,
    bic: str,
    valid_until: datetime,
    message: str = "",
    invoice_id: str = "",
    customer_id: str = "",
) -> str:
    """An MNB QR payload of kind HCT (a credit transfer to us) for an amount in HUF.

    Fields, each followed by a line feed: kind, version 001, character set 1 (UTF-8),
    BIC (11), name (70), IBAN (28), amount ("HUF" and whole forints), validity
    (YYYYMMDDhhmmss and the UTC offset in hours, "+1" in winter, "+2" in summer), purpose,
    message (70), shop, device, invoice (35), customer (35), transaction, loyalty and NAV
    ids. A bank app refuses a code past its validity."""
    account_iban = iban(account)
    if not account_iban.startswith("HU") or len(account_iban) != 28:
        raise ValueError(f"MNB QR: {account!r} is not a Hungarian IBAN (28 characters)")
    if len(bic) == 8:
        bic += "XXX"
    if len(bic) != 11:
        raise ValueError(f"MNB QR: BIC {bic!r}, expected 8 or 11 characters")
    if amount_minor % 100 or not 0 < amount_minor // 100 <= 999_999_999_999:
        raise ValueError(f"MNB QR: {amount_minor} fillér is not a whole number of forints > 0")
    offset = valid_until.utcoffset()
    if offset is None or offset.total_seconds() % 3600 or not 0 <= offset.total_seconds() < 36000:
        raise ValueError("MNB QR: validity needs a time zone of whole hours, 0 to +9")
    fields = [
        "HCT",
        "001",
        "1",
        bic,
        beneficiary.strip()[:70],
        account_iban,
        f"HUF{amount_minor // 100}",
        f"{valid_until:%Y%m%d%H%M%S}+{int(offset.total_seconds() // 3600)}",
        "",
        message[:70],
        "",
        "",
        invoice_id[:35],
        customer_id[:35],
        "",
        "",
        "",
    ]
    if any("\n" in f for f in fields):
        raise ValueError("MNB QR: a field contains a line feed")
    return "".join(f + "\n" for f in fields)


def for_payment(
    account: str,
    currency: str,
    amount_minor: int,
    vs: str | None,
    ss: str | None,
    due: date,
    beneficiary: str,
    *,
    ks: str | None = None,
    bic: str | None = None,
    message: str = "",
    hct_valid_until: datetime | None = None,
) -> tuple[str, str] | None:
    """The payment code that fits a payment: (format name, payload), or None where no
    code fits (another currency). CZK: SPAYD; EUR to a Slovak account: PAY by square;
    other EUR: EPC QR; HUF: MNB HCT (valid until ``hct_valid_until``)."""
    if amount_minor <= 0:
        return None
    if currency == "CZK":
        return "spayd", spayd(account, amount_minor, currency, vs, ss, due, message, beneficiary)
    if currency == "EUR" and iban(account).startswith("SK"):
        code = pay_by_square(
            account, amount_minor, currency, vs, ss, due, ks, message, beneficiary, bic or ""
        )
        return "pay_by_square", code
    if currency == "EUR":
        symbols = "".join(f"/{k}{v}" for k, v in (("VS", vs), ("SS", ss), ("KS", ks)) if v)
        return "epc", epc(account, amount_minor, beneficiary, symbols or message, bic or "")
    if currency == "HUF":
        if not bic:
            raise ValueError("MNB QR: the supplier's BIC is required for a HUF payment code")
        if hct_valid_until is None:
            raise ValueError("MNB QR: a validity (hct_valid_until) is required")
        return "mnb_hct", mnb_hct(
            account,
            amount_minor,
            beneficiary,
            bic,
            hct_valid_until,
            message or ss or "",
            invoice_id=ss or "",
            customer_id=vs or "",
        )
    return None
