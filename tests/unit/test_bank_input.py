"""Hostile bank input (issue 27, items 1-5), a test per class of fault: statements that do
not add up, amounts no bank can send, values of the wrong type, inputs that crashed a
parser, account numbers whose check digits fail. Each parser either parses correctly or
raises ``StatementRejected`` naming file, line and field; nothing else escapes."""

from __future__ import annotations

import json
import logging
import re
from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.accounts import account_problem
from schemas.events import PaymentReceived
from schemas.money import MAX_AMOUNT_MINOR, MAX_CREDIT_MINOR, AmountError, parse_minor
from schemas.registry import PoisonMessage, parse
from services.bank_import.formats import (
    ImportOptions,
    StatementRejected,
    parse_statement,
    read_statement,
)
from services.payments import domain
from tests.unit.test_importers import FIX, REAL, needs_real, real_dir
from tests.unit.test_schemas import PAYMENT

__all__ = ["real_dir"]  # the fixture ``needs_real`` uses


def rejected(data: bytes, name: str, fmt: Any = None, **opts: Any) -> str:
    with pytest.raises(StatementRejected) as exc:
        parse_statement(data, name, fmt, ImportOptions(**opts))
    msg = str(exc.value)
    assert "statement rejected, nothing imported" in msg
    return msg


# --- 1. a statement is checked against its own totals --------------------------------------
# One movement duplicated (under a new id, so the id check cannot see it) and another
# dropped: every id is unique and every line well formed, only the totals tell.


def _gpc_dup_drop() -> tuple[bytes, str]:
    lines = (FIX / "kb.gpc").read_bytes().split(b"\r\n")
    fee = next(ln for ln in lines if ln[35:48] == b"0000000003003")
    copy = fee[:35] + b"0000000003099" + fee[48:]
    kept = [ln for ln in lines if ln[35:48] != b"0000000003006"]
    at = kept.index(fee) + 1
    return b"\r\n".join([*kept[:at], copy, *kept[at:]]), "new balance (positions 61-75)"


def _mt940_dup_drop() -> tuple[bytes, str]:
    text = (REAL / "mt940/sberbank_hu__171011_01234945.sta").read_bytes()
    blocks = re.split(rb"(?m)^(?=:61:|:62F:)", text)  # header, 3 movements, closing
    return b"".join([blocks[0], blocks[1], blocks[1], blocks[2], blocks[4]]), (
        ":62F: closing balance: expected 617874.30 HUF as the bank wrote it, got "
        "'619047.30 HUF = opening 627311.30 HUF + 0 credit(s) 0.00 HUF - 3 debit(s) 8264.00 HUF'"
    )


def _camt_dup_drop() -> tuple[bytes, str]:
    text = (REAL / "camt053/rb_cz__testczk.xml").read_bytes()
    entries = re.findall(rb"<Ntry>.*?</Ntry>", text, flags=re.S)
    copy = entries[0].replace(b"7170839739", b"7170839799")
    text = text.replace(entries[1], copy)
    return text, "Bal CLBD (closing booked balance): expected 407931.95 CZK as the bank"


def _fio_dup_drop() -> tuple[bytes, str]:
    doc = json.loads(
        (REAL / "fio_json/h4kuna__2015-01-01-2015-04-16-transactions.json").read_text()
    )
    txs = doc["accountStatement"]["transactionList"]["transaction"]
    copy = json.loads(json.dumps(txs[0]))
    copy["column22"]["value"] = 1
    txs[1] = copy
    return json.dumps(doc).encode(), "accountStatement.info.closingBalance: expected 2821.85 CZK"


@needs_real
@pytest.mark.parametrize("case", [_gpc_dup_drop, _mt940_dup_drop, _camt_dup_drop, _fio_dup_drop])
def test_a_movement_duplicated_and_another_dropped_rejects_the_whole_file(case: Any) -> None:
    data, where = case()
    assert where in rejected(data, "statement")


def test_gpc_turnovers_are_checked_as_well_as_the_balance() -> None:
    lines = (FIX / "kb.gpc").read_bytes().split(b"\r\n")
    h = bytearray(lines[0])
    h[90:105] = b"00000000249900+"  # credit turnover 1.00 off, balances still right
    msg = rejected(b"\r\n".join([bytes(h), *lines[1:]]), "kb.gpc")
    assert "kb.gpc:1: turnovers (positions 76-105): expected debits -87.50 CZK and credits " in msg
    assert "2499.00 CZK as written, got 'debits 312.50 CZK and credits 2898.00 CZK in 6" in msg


def test_mt940_90d_90c_counts_and_sums_are_checked() -> None:
    text = (
        (FIX / "tatra.sta").read_bytes().replace(b":62F:", b":90C:1EUR19,90\n:90D:2EUR5,00\n:62F:")
    )
    msg = rejected(text, "tatra.sta")
    assert "tatra.sta:10: :90D: debits: expected 2 movement(s) summing 5.00 EUR" in msg
    assert ":90C:" not in msg  # that one is right


def test_camt_batch_entry_must_equal_its_transactions() -> None:
    data = (FIX / "camt053_cz.xml").read_bytes().replace(b">400.00<", b">300.00<")
    assert "Ntry/Amt: expected the sum of its transactions, 900.00 CZK" in rejected(data, "x.xml")


# --- 2. amounts no bank can send -------------------------------------------------------------


@pytest.mark.parametrize("amount", ["92233720368547758.07", "1e308", "1E+999999", "-1E+999999"])
def test_huge_amounts_are_refused_cleanly_in_camt(amount: str) -> None:
    data = (FIX / "camt053_sk.xml").read_bytes().replace(b">19.90<", f">{amount}<".encode())
    assert re.search(r"sk\.xml:8: (Ntry/)?Amt: expected ", rejected(data, "sk.xml"))


@pytest.mark.parametrize("amount", ["92233720368547758.07", "1e308", "1E+999999", "1" * 5000])
def test_huge_amounts_are_refused_cleanly_in_fio_json(amount: str) -> None:
    data = _fio_doc(amount)
    assert "transaction[0].column1: expected " in rejected(data, "fio.json", "fio-json")


def test_huge_amounts_are_refused_in_csv_and_mt940() -> None:
    csv = (FIX / "fio.csv").read_bytes().replace(b"499,00", b"922337203685477580,07")
    mapping = str(FIX / "fio_mapping.toml")
    assert "Objem (amount): expected at most 99999999999999 minor units" in rejected(
        csv, "fio.csv", csv_mapping=mapping
    )
    sta = (FIX / "tatra.sta").read_bytes().replace(b"CR19,90", b"CR99999999999999,")
    assert "tatra.sta:5: :61: amount: expected at most 99999999999999 minor units" in rejected(
        sta, "tatra.sta"
    )


def test_payment_received_bounds_the_amount() -> None:
    ok = _payment(amount_minor=MAX_AMOUNT_MINOR)
    assert ok.amount_minor == MAX_AMOUNT_MINOR
    for bad in (2**63 - 1, MAX_AMOUNT_MINOR + 1, -MAX_AMOUNT_MINOR - 1):
        with pytest.raises(ValidationError, match="amount_minor"):
            _payment(amount_minor=bad)


def test_cli_payment_publish_bounds_the_amount() -> None:
    from services.bank_import.cli import parse_amount
    from services.runtime.errors import BadInput as CliError

    assert parse_amount("499.00") == 49900 and parse_amount("-1,5") == -150
    for bad in ("92233720368547758.07", "1e308", "1_000", "４９９"):
        with pytest.raises(CliError, match="amount"):
            parse_amount(bad)


def test_a_contracts_credit_never_passes_the_limit() -> None:
    inv = domain.OpenInvoice("FA1", "1001", "1", date(2026, 12, 1), 49900, 0, "CZK")
    mv = domain.Movement("2001234561/2010", "t1", date(2026, 12, 2), MAX_AMOUNT_MINOR, "CZK",
                         "1001", None)  # fmt: skip
    decision = domain.match(mv, domain.ContractInfo("1001", "CZK"), [inv], None, 0)
    assert isinstance(decision, domain.Matched)
    assert decision.credit_minor == MAX_AMOUNT_MINOR - 49900
    assert domain.within_credit_limit(decision, 0) is decision
    queued = domain.within_credit_limit(decision, MAX_CREDIT_MINOR - 1000)
    assert isinstance(queued, domain.Unmatched) and queued.code == "credit-limit"
    assert "over the limit" in queued.reason
    assert MAX_CREDIT_MINOR + MAX_AMOUNT_MINOR < 2**63 - 1  # the sum still fits bigint


# --- 3. strict types -------------------------------------------------------------------------


def _event(type_: str, data: dict[str, Any]) -> bytes:
    return json.dumps({**PAYMENT, "type": type_, "data": data}).encode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount_minor", "499.00"),
        ("amount_minor", "49900"),
        ("amount_minor", 499.0),
        ("amount_minor", True),
        ("booked_on", 1765324800),
        ("bank_tx_id", 123),
    ],
)
def test_payment_received_coerces_nothing(field: str, value: object) -> None:
    with pytest.raises(PoisonMessage, match=field):
        parse(_event("payment.received.v1", {**PAYMENT["data"], field: value}))
    _, data = parse(_event("payment.received.v1", PAYMENT["data"]))
    assert data.amount_minor == 49900  # type: ignore[attr-defined]


def test_network_access_and_gear_applied_coerce_nothing() -> None:
    access = {
        "contract": "1001",
        "subscribers": {"ipv4": ["10.0.0.1"]},
        "state": "active",
        "reason": "paid",
        "version": 3,
        "effective_at": "2026-12-10T08:00:00Z",
    }
    assert parse(_event("network.access.v1", access))[1].version == 3  # type: ignore[attr-defined]
    with pytest.raises(PoisonMessage, match="version"):
        parse(_event("network.access.v1", {**access, "version": "3"}))
    with pytest.raises(PoisonMessage, match="ipv4"):
        parse(_event("network.access.v1", {**access, "subscribers": {"ipv4": "10.0.0.1"}}))
    applied = {"gear": "gw1", "contract": "1001", "version": 1, "state": "active",
               "applied_at": "2026-12-10T08:00:00Z"}  # fmt: skip
    parse(_event("gear.applied.v1", applied))
    with pytest.raises(PoisonMessage, match="version"):
        parse(_event("gear.applied.v1", {**applied, "version": 1.0}))


def test_a_negative_amount_on_a_credit_is_an_error_not_a_debit() -> None:
    camt = (FIX / "camt053_sk.xml").read_bytes().replace(b">19.90<", b">-19.90<")
    assert "Amt: expected a decimal amount of digits, no sign" in rejected(camt, "sk.xml")
    mapping = str(FIX / "split_mapping.toml")
    text = (FIX / "split.csv").read_text(encoding="utf-8")
    rows = text.splitlines()
    credit = rows[3].split(",")
    assert credit[1] == "19.90"  # the credit column of this row
    credit[1] = "-19.90"
    bad = "\n".join([*rows[:3], ",".join(credit), *rows[4:]])
    assert "expected an amount without a sign (the column says credit or debit)" in rejected(
        bad.encode(), "split.csv", csv_mapping=mapping
    )


@pytest.mark.parametrize("text", ["1_000", "１０００", "1e3", "+-1", "1.2.3", "٣"])
def test_amount_text_is_plain_ascii_decimal(text: str) -> None:
    with pytest.raises(AmountError):
        parse_minor(text)
    assert parse_minor("1000.5") == 100050


def test_full_width_and_underscored_digits_are_refused_in_statements() -> None:
    kb = (FIX / "kb.gpc").read_bytes().decode("cp1250").split("\r\n")
    kb[1] = kb[1][:48] + "０００００００４９９００" + kb[1][60:]  # full-width amount
    assert "kb.gpc:2: amount (positions 49-60): expected 12 digits" in rejected(
        "\r\n".join(kb).encode("utf-8"), "kb.gpc"
    )
    mapping = str(FIX / "fio_mapping.toml")
    csv = (FIX / "fio.csv").read_bytes()
    assert "Objem (amount): expected an amount" in rejected(
        csv.replace(b"499,00", b"4_99,00"), "fio.csv", csv_mapping=mapping
    )
    vs = csv.replace(b";1001;", ";１００１;".encode())
    assert "VS (vs): expected digits" in rejected(vs, "fio.csv", csv_mapping=mapping)
    camt = (FIX / "camt053_sk.xml").read_bytes().replace(b">19.90<", ">１９.90<".encode())
    assert "Amt: expected a decimal amount of digits" in rejected(camt, "sk.xml")


# --- 4. inputs that crashed a parser -----------------------------------------------------------


def _fio_doc(amount: str, nest: int = 0) -> bytes:
    note = "[" * nest + "]" * nest if nest else "null"
    return (
        '{"accountStatement":{"info":{"accountId":"2000282668","bankId":"2010",'
        '"currency":"CZK"},"transactionList":{"transaction":[{"column22":{"value":1},'
        f'"column0":{{"value":"2026-11-16+0100"}},"column1":{{"value":{amount}}},'
        f'"column16":{{"value":{note}}}}}]}}}}}}'
    ).encode()


def test_fio_json_deep_nesting_and_huge_integers() -> None:
    assert "JSON: expected a Fio API JSON document" in rejected(
        _fio_doc("1", nest=100_000), "fio.json", "fio-json"
    )
    assert "expected at most 99999999999999" in rejected(_fio_doc("9" * 5000), "f.json", "fio-json")
    [m] = parse_statement(_fio_doc("499.00"), "fio.json", "fio-json")
    assert m.amount_minor == 49900


def test_csv_field_over_128_kb_names_its_line() -> None:
    csv = (FIX / "fio.csv").read_bytes().replace(b"listopad", b'"' + b"x" * 200_000 + b'"')
    msg = rejected(csv, "fio.csv", csv_mapping=str(FIX / "fio_mapping.toml"))
    assert re.search(r"fio\.csv:\d+: row: expected a CSV row, got 'field larger than", msg)


def test_utf8_bom_before_windows_1250_text_is_read_as_windows_1250() -> None:
    [m, *_] = parse_statement(b"\xef\xbb\xbf" + (FIX / "kb.gpc").read_bytes(), "kb.gpc")
    assert m.counterparty_name == "Novák Jan"


def test_mt940_errors_name_the_line_and_print_nothing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    text = (FIX / "tatra.sta").read_bytes()
    caplog.set_level(logging.DEBUG)
    msg = rejected(text.replace(b"2611161116CR", b"2613161116CR"), "tatra.sta")
    assert "tatra.sta:5: :61: value date: expected a date YYMMDD, got '261316'" in msg
    msg = rejected(text.replace(b"CR19,90", b"CR19,9x"), "tatra.sta")
    assert "tatra.sta:5: :61: statement line: expected date" in msg
    msg = rejected(text.replace(b"EUR1000,00", b"EUR10x0,00"), "tatra.sta")
    assert "tatra.sta:4: :60F: balance: expected C or D, a date YYMMDD" in msg
    assert capsys.readouterr() == ("", "") and not caplog.records


# --- 5. account numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "valid"),
    [
        ("19-2000145399/0800", True),
        ("2001234561/2010", True),
        ("2001234567/2010", False),  # mod 11
        ("19-2000145399/9999", False),  # no such bank code
        ("CZ1520100000002001234561", True),
        ("CZ4720100000002001234567", False),  # IBAN digits right, the number inside is not
        ("CZ1520100000002001234562", False),  # mod 97
        ("SK35 1100 0000 0026 1234 5674", True),
        ("SK3111000000002612345678", False),
        ("DE89370400440532013000", True),
        ("DE89370400440532013001", False),
        ("123456789150ABCDEF002", True),  # no rule to check this form by: taken as it is
    ],
)
def test_account_numbers(account: str, valid: bool) -> None:
    assert (account_problem(account) is None) is valid


def test_our_account_must_pass_its_check_digits() -> None:
    with pytest.raises(ValidationError, match="mod-11"):
        _payment(account="2001234567/2010")
    assert "--account: expected an account number whose prefix and number pass" in rejected(
        (FIX / "tatra.sta").read_bytes(), "tatra.sta", account="2001234567/2010"
    )


def test_a_payers_bad_account_is_imported_and_noted() -> None:
    data = (FIX / "kb.gpc").read_bytes().replace(b"0000192000145399", b"0000192000145398")
    st = read_statement(data, "kb.gpc")
    [first] = [m for m in st.movements if m.bank_tx_id == "3001"]
    assert first.counterparty_account == "19-2000145398/0800" and first.amount_minor == 49900
    assert any(
        n.startswith("kb.gpc:2: counterparty_account: expected an account") for n in st.notes
    )


# --- helpers -------------------------------------------------------------------------------------


def _payment(**changes: Any) -> PaymentReceived:
    fields: dict[str, Any] = {
        "account": "2001234561/2010",
        "bank_tx_id": "1",
        "booked_on": date(2026, 12, 10),
        "value_on": date(2026, 12, 10),
        "amount_minor": 49900,
        "currency": "CZK",
    }
    return PaymentReceived(**{**fields, **changes})


def test_a_statement_names_our_accounts_an_empty_one_too() -> None:
    """What each import announces (bank_statement.imported, for the overdue-import alert):
    the accounts of the file, from its header, also when it holds no movement."""
    for name in ("kb.gpc", "camt053_cz.xml", "tatra.sta"):
        st = read_statement((FIX / name).read_bytes(), name)
        assert st.accounts and set(st.accounts) == {m.account for m in st.movements}, name
    header = (FIX / "kb.gpc").read_bytes().splitlines()[0]
    old = header[45:60]
    # no movement: the new balance is the old one, both turnovers nil
    empty = header[:60] + old + b"00000000000000+" * 2 + header[105:] + b"\r\n"
    st = read_statement(empty, "empty.gpc")
    assert st.movements == [] and st.accounts == ["2001234561"]  # as the movements say it
    st = read_statement(empty, "empty.gpc", opts=ImportOptions(account="19-2000145399/0100"))
    assert st.accounts == ["19-2000145399/0100"]  # --account overrides the file's
