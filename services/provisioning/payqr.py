"""Payment QR codes for the notice page. Pure.

- Czech "QR Platba" (SPAYD 1.0, Czech Banking Association): ``SPD*1.0*ACC:<IBAN>*AM:...``,
  read by every Czech banking app, for CZK.
- Slovak "PAY by square" (Slovak Banking Association): tab-separated payment fields,
  a CRC32, LZMA1 raw compression, a 4-byte header, then base32hex; read by Slovak banking
  apps, for EUR.
Both carry the account, amount, VS and SS (and the due date), so the customer pays
exactly what pairing expects.
"""

from __future__ import annotations

import binascii
import lzma
import re
import unicodedata
from datetime import date
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
        "",
        "",
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
