"""Statement importers: our own fixtures for every variant (tests/fixtures/statements),
and the real bank files in ../shared/data/statements parse to what SOURCES.md lists."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from schemas.events import PaymentReceived
from services.bank_import.formats import ImportOptions, StatementRejected, detect, parse_statement
from services.bank_import.formats.base import StableIds, constant_symbol, minor_units, symbol
from tests.conftest import unavailable

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "statements"
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "statements"


# The real bank files sit beside the repository (../shared, present in CI and on development
# machines). Elsewhere these tests skip saying so; with CI=true a missing folder fails them.
@pytest.fixture
def real_dir() -> Path:
    if not REAL.is_dir():
        unavailable(
            f"the real bank statements are not at {REAL} (see ../shared/data)",
            "the real-file tests",
        )
    return REAL


def needs_real(test: Any) -> Any:
    return pytest.mark.usefixtures("real_dir")(test)


def parse(name: str, **opts: object) -> list[PaymentReceived]:
    path = FIX / name
    encoding = opts.pop("encoding", None)
    return parse_statement(
        path.read_bytes(),
        name,
        opts=ImportOptions(**opts),
        encoding=encoding,  # type: ignore[arg-type]
    )


def real(rel: str, encoding: str | None = None) -> list[PaymentReceived]:
    return parse_statement((REAL / rel).read_bytes(), rel, encoding=encoding)


SIGNS = {"kb": {b"1": -1, b"2": 1, b"4": 1, b"5": -1}, "cs": {b"1": -1, b"2": 1, b"4": -1, b"5": 1}}


def balanced_gpc(data: bytes, variant: str = "kb") -> bytes:
    """``data`` with each 074 header's new balance and turnovers set to what its 075
    items add up to (amount at positions 49-60, posting code at 61): for tests that take
    items out of a file or put some in."""
    lines = data.splitlines()
    header = -1
    totals: dict[int, list[int]] = {}
    for i, line in enumerate(lines):
        if line.startswith(b"074"):
            header, totals[i] = i, [0, 0]
        elif line.startswith(b"075") and header >= 0:
            amount = SIGNS[variant][line[60:61]] * int(line[48:60])
            totals[header][amount > 0] += abs(amount)

    def put(h: bytearray, start: int, value: int) -> None:
        h[start - 1 : start + 14] = str(abs(value)).rjust(14, "0").encode() + (
            b"-" if value < 0 else b"+"
        )

    for i, (debits, credits) in totals.items():
        h = bytearray(lines[i])
        old = (-1 if h[59:60] == b"-" else 1) * int(h[45:59])
        put(h, 61, old + credits - debits)
        put(h, 76, debits)
        put(h, 91, credits)
        lines[i] = bytes(h)
    return b"\r\n".join(lines) + b"\r\n"


def rejected(data: bytes, name: str, **opts: object) -> str:
    with pytest.raises(StatementRejected) as exc:
        parse_statement(data, name, opts=ImportOptions(**opts))  # type: ignore[arg-type]
    return str(exc.value)


# --- GPC ---------------------------------------------------------------------------------


def test_gpc_kb_layout_codes_messages_and_bank_code_in_ks() -> None:
    ms = parse("kb.gpc")
    by_id = {m.bank_tx_id: m for m in ms}
    first = by_id["3001"]
    assert first.amount_minor == 49900 and first.currency == "CZK"
    assert (first.vs, first.ss, first.ks) == ("1001", "2026000001", "0308")
    assert first.counterparty_account == "19-2000145399/0800"
    assert first.counterparty_name == "Novák Jan"  # windows-1250
    assert first.message == "Faktura za listopad Děkuji Jan Novák, Brno"  # 078 + 079
    assert first.booked_on == date(2026, 11, 15)
    assert by_id["3003"].amount_minor == -1250  # 1 debit
    assert by_id["3004"].amount_minor == -30000  # 5 credit reversal (KB): money taken back
    assert by_id["3005"].amount_minor == 10000  # 4 debit reversal (KB): money back to us
    assert by_id["3006"].value_on == date(2026, 11, 14)
    assert by_id["3006"].booked_on == date(2026, 11, 15)


def test_gpc_ceska_sporitelna_swaps_reversal_codes() -> None:
    # kb.gpc's header adds up with KB's codes only; the message says which variant fits
    msg = rejected((FIX / "kb.gpc").read_bytes(), "kb.gpc", gpc_variant="cs")
    assert "(it adds up with --gpc-variant kb)" in msg
    data = balanced_gpc((FIX / "kb.gpc").read_bytes(), "cs")
    ms = parse_statement(data, "cs.gpc", opts=ImportOptions(gpc_variant="cs"))
    by_id = {m.bank_tx_id: m for m in ms}
    assert by_id["3004"].amount_minor == 30000  # 5 = reversal of a debit at ČS
    assert by_id["3005"].amount_minor == -10000  # 4 = reversal of a credit at ČS
    assert by_id["3001"].amount_minor == 49900


def test_gpc_air_bank_short_header_and_default_currency() -> None:
    [m] = parse("airbank.gpc", currency="CZK")
    assert (m.account, m.bank_tx_id, m.vs, m.amount_minor) == ("1234567890", "9001", "1001", 49900)
    [eur] = parse("airbank.gpc", currency="EUR", account="SK3511000000002612345674")
    assert eur.currency == "EUR" and eur.account == "SK3511000000002612345674"


def test_gpc_broken_line_rejects_whole_file_naming_line_and_field() -> None:
    msg = rejected((FIX / "broken.gpc").read_bytes(), "broken.gpc")
    assert "broken.gpc:3: amount (positions 49-60): expected 12 digits" in msg
    assert "nothing imported" in msg


def test_gpc_item_before_header_and_unknown_record() -> None:
    line = (FIX / "kb.gpc").read_bytes().split(b"\r\n")[1]
    assert "074 header before the first 075" in rejected(line + b"\r\n", "x.gpc")
    msg = rejected((FIX / "kb.gpc").read_bytes() + b"999garbage\r\n", "x.gpc")
    assert "x.gpc:10: record type (positions 1-3): expected 074, 075, 076, 078 or 079" in msg


@needs_real
def test_real_fio_gpc() -> None:
    # The file was cut down to one movement; its header still says what the whole
    # statement held, so it does not add up and is refused, naming both figures.
    msg = rejected((REAL / "gpc/fio__k3a-ago__fio.gpc").read_bytes(), "fio.gpc")
    assert (
        "fio.gpc:1: new balance (positions 61-75): expected 310454.19 CZK as the bank wrote "
        "it, got '311940.21 CZK = opening 313174.77 CZK + 0 credit(s) 0.00 CZK - 1 debit(s) "
        "1234.56 CZK'"
    ) in msg
    data = balanced_gpc((REAL / "gpc/fio__k3a-ago__fio.gpc").read_bytes())
    [m] = parse_statement(data, "fio.gpc")
    assert m.amount_minor == -123456 and m.currency == "CZK"  # ISO 0203 at 119-122
    assert (m.vs, m.ks, m.ss) == ("1446556401", "0308", "7815392681")
    assert m.counterparty_account is not None and m.counterparty_account.endswith("/0100")
    assert m.booked_on == date(2018, 9, 24)  # DDMMYY 240918


@needs_real
@pytest.mark.parametrize(
    ("rel", "where"),
    [
        ("gpc/spojenet__basic_format.abo", ":1: old balance date"),  # misaligned 074
        ("gpc/spojenet__extended_format_cs.abo", "expected at most 128 characters"),
        ("gpc/spojenet__malformed.abo", ":3: record type (positions 1-3)"),
        ("gpc/stancl__fio_sample.gpc", ":1: old balance date"),
    ],
)
def test_real_synthetic_gpc_files_are_rejected(rel: str, where: str) -> None:
    assert where in rejected((REAL / rel).read_bytes(), rel)


@needs_real
def test_real_synthetic_gpc_items_have_the_documented_layout() -> None:
    """The SYNTH files' 075 records are well formed: read them under a valid header."""
    header = (FIX / "kb.gpc").read_bytes().split(b"\r\n")[0]
    items = (REAL / "gpc/spojenet__basic_format.abo").read_bytes().splitlines()[1:]
    ms = parse_statement(balanced_gpc(b"\n".join([header, *items])), "basic.abo")
    assert [(m.vs, m.ks, m.ss, m.amount_minor) for m in ms] == [
        ("1746581670", "0558", "9999", -110001),  # posting code 5: credit reversal
        ("1746581670", "0558", "9999", -133001),
    ]
    items = (REAL / "gpc/stancl__fio_sample.gpc").read_bytes().splitlines()[1:]
    ms = parse_statement(balanced_gpc(b"\n".join([header, *items])), "stancl.gpc")
    assert len(ms) == 5 and ms[0].counterparty_name == "Objednávka č. 1234"
    assert [m.vs for m in ms] == ["1234", "1235", "12", "1236", "12"]
    # two identical card payments without an id get distinct, stable ids
    assert ms[2].bank_tx_id != ms[4].bank_tx_id
    again = parse_statement(balanced_gpc(b"\n".join([header, *items])), "stancl.gpc")
    assert [m.bank_tx_id for m in again] == [m.bank_tx_id for m in ms]


# --- camt.053 ------------------------------------------------------------------------------


def test_camt_czech_symbols_batch_and_pending() -> None:
    ms = parse("camt053_cz.xml")
    assert [m.bank_tx_id for m in ms] == ["CZ-TX-1", "CZ-TX-2a", "N-2/2", "CZ-TX-3"]  # no PDNG
    first = ms[0]
    assert (first.vs, first.ss, first.ks) == ("1001", "2026000001", "0308")
    assert first.counterparty_account == "19-2000145399/0800"
    assert first.value_on == date(2026, 11, 15) and first.booked_on == date(2026, 11, 16)
    assert (ms[1].vs, ms[1].amount_minor) == ("1002", 60000)  # VS from EndToEndId
    assert (ms[2].vs, ms[2].amount_minor) == (None, 40000)  # NOTPROVIDED
    assert ms[2].message == "platba za fakturu 2026000003"
    assert ms[3].amount_minor == -49900  # a reversal booked as a debit


def test_camt_slovak_symbols_in_end_to_end_id() -> None:
    [m] = parse("camt053_sk.xml")
    assert (m.vs, m.ss, m.ks, m.currency, m.amount_minor) == (
        "2001",
        "2026000005",
        "0308",
        "EUR",
        1990,
    )
    assert m.bank_tx_id == "SK-REF-1"  # entry-level AcctSvcrRef


def test_camt_hungarian_has_no_symbols_and_keeps_the_remittance_text() -> None:
    [m] = parse("camt053_hu.xml")
    assert (m.vs, m.ss, m.ks) == (None, None, None)  # EndToEndId 3001 is not a VS in HU
    assert m.message == "Számla 2026000007 november"
    assert m.amount_minor == 1234500


def test_camt_broken_amount_names_line() -> None:
    msg = rejected((FIX / "camt053_broken.xml").read_bytes(), "camt053_broken.xml")
    assert "camt053_broken.xml:24: Amt: expected a decimal amount of digits" in msg
    assert "got '10O0.00'" in msg


def test_camt_not_xml() -> None:
    assert "well-formed XML" in rejected(
        b"<Document><BkToCstmrStmt>",
        "x.xml",
    )


@needs_real
def test_real_raiffeisen_cz_camt() -> None:
    ms = real("camt053/rb_cz__testczk.xml")
    assert [(m.bank_tx_id, m.amount_minor, m.vs, m.ks) for m in ms] == [
        ("7170839739", 482900, "240100045", None),
        ("7170839749", -700, None, "0898"),
    ]
    assert ms[0].counterparty_account == "131-3021140217/0100"
    problem = real("camt053/rb_cz__problem.xml")
    assert [m.vs for m in problem] == ["1101", "1110"]
    assert problem[0].counterparty_name == "Wágner Dugová Alena"  # from DbtrAcct/Nm
    assert real("camt053/rb_cz__194_2024-11-06_no_entries.xml") == []


@needs_real
def test_real_unicredit_hu_camt() -> None:
    # anonymised: balances and summaries no longer match the entries, so it is refused
    rel = "camt053/unicredit_hu__STATEMENT_12345678_20171130.xml"
    data = (REAL / rel).read_bytes()
    msg = rejected(data, "uc.xml")
    assert (
        "uc.xml:55: Bal CLBD (closing booked balance): expected 123457.14 HUF as the bank "
        "wrote it, got '-173910.86 HUF = opening 123456.14 HUF + 2 credit(s) 125456.00 HUF"
    ) in msg
    assert "uc.xml:71: TxsSummry/TtlCdtNtries/Sum: expected 123456.00 HUF" in msg
    # without the figures (optional in camt.053) its entries read as before
    bare = re.sub(rb"<(Bal|TxsSummry)>.*?</\1>", b"", data, flags=re.S)
    ms = parse_statement(bare, rel)
    assert len(ms) == 9 and all(m.currency == "HUF" for m in ms)
    assert all(m.vs is None and m.ss is None for m in ms)
    assert ms[1].counterparty_name == "Acme Inc." and ms[1].message == "Acme Inc. payroll"
    assert len({m.bank_tx_id for m in ms}) == 9
    multi = "camt053/unicredit_hu__STATEMENT_12345678_20171130_multi_stmt.xml"
    assert "0 debit(s)" in rejected((REAL / multi).read_bytes(), multi)  # no entries, 1.00 apart


# --- MT940 ---------------------------------------------------------------------------------


def test_mt940_tatra_subfields() -> None:
    credit, fee = parse("tatra.sta")
    assert (credit.vs, credit.ss, credit.ks) == ("2001", "2026000005", "0308")
    assert credit.bank_tx_id == "TB-0001" and credit.amount_minor == 1990
    assert credit.counterparty_account == "SK8975000000000012345671"
    assert credit.counterparty_name == "Maria Kovacova"
    assert fee.amount_minor == -500 and fee.vs is None


def test_mt940_regex_fallback_and_stable_ids_for_twins() -> None:
    a, b = parse("cz_regex.sta")
    assert (a.vs, a.ss) == ("1001", "2026000001")
    assert a.bank_tx_id != b.bank_tx_id
    assert [m.bank_tx_id for m in parse("cz_regex.sta")] == [a.bank_tx_id, b.bank_tx_id]


def test_mt940_garbage_is_rejected() -> None:
    msg = rejected(b":20:X\n:25:ACC\n:61:garbage\n", "x.sta")
    assert "x.sta:3: :61: statement line: expected date YYMMDD" in msg
    assert "x.sta:1: :62F: tag: expected one in the statement opened here" in msg


@needs_real
def test_real_hungarian_mt940() -> None:
    # Raiffeisen's file was anonymised: its closing balance is not what its movements give
    data = (REAL / "mt940/raiffeisen_hu__cmi.sta").read_bytes()
    msg = rejected(data, "cmi.sta")
    assert (
        "cmi.sta:40: :62F: closing balance: expected 25281687.60 HUF as the bank wrote it, "
        "got '24158423.60 HUF = opening 25170637.10 HUF + 1 credit(s) 2066637.00 HUF - "
        "6 debit(s) 3078850.50 HUF'"
    ) in msg
    data = data.replace(b":62F:C180417HUF25281687,60", b":62F:C180417HUF24158423,60")
    raiff = parse_statement(data, "cmi.sta", encoding="cp852")
    assert len(raiff) == 7 and raiff[0].amount_minor == 206663700
    assert raiff[0].counterparty_account == "109876543210000012345678"
    assert raiff[0].counterparty_name == "HUNGARY KFT."
    assert raiff[0].message is not None and "összevont" in raiff[0].message
    assert raiff[0].account == "123456789150ABCDEF002"
    assert len({m.bank_tx_id for m in raiff}) == 7  # a repeated bank ref, still unique ids
    sber = real("mt940/sberbank_hu__171011_01234945.sta")
    assert sber[0].amount_minor == -240200 and sber[0].currency == "HUF"
    assert sber[0].counterparty_name == "ERGO Versicherung AG Fiokte lep"
    assert all(m.vs is None for m in sber)


# --- Fio JSON ------------------------------------------------------------------------------


@needs_real
def test_real_fio_json() -> None:
    ms = real("fio_json/h4kuna__2015-01-01-2015-04-16-transactions.json")
    assert len(ms) == 10 and ms[0].account == "2000282668/2010"
    [tagged] = [m for m in ms if m.vs == "123"]
    assert (tagged.ss, tagged.ks, tagged.amount_minor) == ("55", "0308", -100)
    assert tagged.counterparty_account == "2000242017/2010"
    assert {m.ks for m in ms} >= {"0558", "0308"}
    assert ms[0].amount_minor == 139  # 1.39 read as a decimal, not a float
    # its ids and our account are masked: 1234567890/2010 fails the mod-11 check
    cards_file = "fio_json/honzajavorek-fiobank__transactions.json"
    assert "account: expected an account number whose prefix and number pass the mod-11" in (
        rejected((REAL / cards_file).read_bytes(), cards_file)
    )
    cards = parse_statement(
        (REAL / cards_file).read_bytes(), cards_file, opts=ImportOptions(account="2000282668/2010")
    )
    assert [m.vs for m in cards] == ["5678", "1234"] and cards[1].amount_minor == -35329
    example_file = "fio_json/mhujer__example-response.json"  # a documentation example
    data = (REAL / example_file).read_bytes()
    assert "closingBalance: expected 1000.00 CZK as the bank wrote it, got '1627.00 CZK" in (
        rejected(data, example_file)
    )
    data = data.replace(b'"closingBalance": 1000', b'"closingBalance": 1627')
    example = parse_statement(data, example_file)
    assert [m.vs for m in example] == [None, "123456789", "123456789"]  # VS "0" is none
    assert example[0].counterparty_account == "214498596"  # bank code 0000 dropped


def test_fio_json_bad_amount_is_rejected() -> None:
    doc = (
        b'{"accountStatement":{"info":{"accountId":"1","bankId":"2010","currency":"CZK"},'
        b'"transactionList":{"transaction":[{"column22":{"value":1},"column0":{"value":'
        b'"2026-11-16+0100"},"column1":{"value":"lots"}}]}}}'
    )
    assert "transaction[0].column1: expected a number" in rejected(doc, "fio.json")


# --- CSV -----------------------------------------------------------------------------------


def test_csv_fio_export_with_mapping() -> None:
    paid, fee = parse("fio.csv", csv_mapping=str(FIX / "fio_mapping.toml"))
    assert (paid.bank_tx_id, paid.amount_minor, paid.vs, paid.ss, paid.ks) == (
        "26001",
        49900,
        "1001",
        "2026000001",
        "0308",
    )
    assert paid.counterparty_account == "2000145399/0800"
    assert fee.amount_minor == -125050  # "-1 250,50"


def test_csv_credit_debit_columns_and_no_ids() -> None:
    a, b, fee = parse("split.csv", csv_mapping=str(FIX / "split_mapping.toml"))
    assert (a.amount_minor, fee.amount_minor, a.currency) == (1990, -350, "EUR")
    assert a.bank_tx_id != b.bank_tx_id


def test_csv_bad_row_and_bad_mapping(tmp_path: Path) -> None:
    bad = (FIX / "fio.csv").read_bytes().replace(b"499,00", b"499,0x")
    msg = rejected(bad, "bad.csv", csv_mapping=str(FIX / "fio_mapping.toml"))
    assert "bad.csv:2: Objem (amount): expected an amount such as 1 234,50" in msg
    mapping = tmp_path / "m.toml"
    mapping.write_text('[columns]\nbooked_on = "D"\namount = "A"\nwhen = "W"\n')
    with pytest.raises(ValueError, match=r"m.toml: columns.when: unknown field"):
        parse("fio.csv", csv_mapping=str(mapping))
    mapping.write_text(
        '[file]\ndelimiter = ";"\ndecimal_comma = true\ndate_format = "%d.%m.%Y"\n'
        '[columns]\nbooked_on = "Datum"\namount = "Objem"\ncurrency = "Měna"\n',
        encoding="utf-8",
    )
    assert "account: expected our account" in rejected(
        (FIX / "fio.csv").read_bytes(), "fio.csv", csv_mapping=str(mapping)
    )


# --- shared rules --------------------------------------------------------------------------


def test_detect() -> None:
    assert detect((FIX / "kb.gpc").read_bytes(), "x") == "gpc"
    assert detect((FIX / "camt053_sk.xml").read_bytes(), "x") == "camt053"
    assert detect((FIX / "tatra.sta").read_bytes(), "x") == "mt940"
    assert detect(b'{"accountStatement": {}}', "x") == "fio-json"
    assert detect(b"a;b\n", "x.csv") == "csv"
    with pytest.raises(StatementRejected, match="pass --format"):
        detect(b"hello", "x.txt")


def test_symbols_money_and_ids() -> None:
    assert symbol("0000001001", "vs") == "1001"
    assert symbol("0000000000", "vs") is None
    assert symbol("NOTPROVIDED", "vs", strict=False) is None
    with pytest.raises(Exception, match="digits"):
        symbol("12a", "vs")
    assert constant_symbol("308") == "0308" and constant_symbol("0000") is None
    assert minor_units("1234.5", "CZK") == 123450
    with pytest.raises(Exception, match="decimal places"):
        minor_units("1.234", "CZK")
    ids = StableIds()
    assert ids.make(1, 2) != ids.make(1, 2)


def test_duplicate_movement_ids_in_one_file_are_rejected() -> None:
    data = (FIX / "kb.gpc").read_bytes()
    line = data.split(b"\r\n")[4]
    assert "unique per account" in rejected(balanced_gpc(data + line + b"\r\n"), "dup.gpc")


def test_gpc_fast_path_agrees_with_the_field_by_field_parser() -> None:
    from schemas.events import PaymentReceived
    from services.bank_import.formats import gpc
    from services.bank_import.formats.base import StableIds, construct_checked

    lines = [ln for ln in gpc.decode((FIX / "kb.gpc").read_bytes()).splitlines()]
    stmt = gpc.parse_header(lines[0])
    for variant in ("kb", "cs"):
        opts = ImportOptions(gpc_variant=variant)  # type: ignore[arg-type]
        for line in (ln for ln in lines if ln.startswith("075")):
            fast = gpc._fast_item(line, stmt, gpc.SIGNS[variant], opts, StableIds())
            assert fast == gpc._item(line, stmt, gpc.SIGNS[variant], opts, StableIds())
            # and the model built without validation is the validated one
            assert fast is not None
            built, validated = construct_checked(dict(fast)), PaymentReceived(**fast)
            assert built == validated
            assert built.model_dump_json() == validated.model_dump_json()
            assert built.model_fields_set == validated.model_fields_set
    assert (
        gpc._fast_item("075" + "x" * 125, stmt, gpc.SIGNS["kb"], ImportOptions(), StableIds())
        is None
    )


@pytest.mark.parametrize("enabled", [True, False])
def test_the_cyclic_collector_is_paused_for_a_parse_and_restored_after(enabled: bool) -> None:
    """Parsing pauses the cyclic GC (a third of a large file's parse) and gives it back as it
    was, after a good file and after a rejected one alike."""
    import gc

    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        movements = parse("kb.gpc")
        assert movements and gc.isenabled() is enabled
        with pytest.raises(StatementRejected):
            parse_statement(b"075" + b"9" * 40 + b"\r\n", "broken.gpc", "gpc")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
