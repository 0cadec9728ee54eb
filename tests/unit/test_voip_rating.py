"""VoIP rating as data (issue 31 items 2 and 4): the price list's checks, the longest prefix
valid on the call's day, increments and setup fee, numbers in any notation; CDR lines read
or refused with their line and column; the prepaid credit's announcements once each."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from schemas import pricelist
from schemas.pricelist import NoPrice, NumberError, PriceListError, normalise
from services.voip import cdr, domain
from services.voip.settings import DEMO_PRICE_LIST

HEAD = "prefix,destination,currency,price_per_minute,increments,setup_fee,valid_from,valid_to\n"
PRICES = pricelist.parse(
    HEAD
    + "420,CZ fixed,CZK,0.60,60/60,0,2026-01-01,\n"
    + "4206,CZ mobile old,CZK,2.00,60/60,0,2026-01-01,2026-12-04\n"
    + "4206,CZ mobile,CZK,1.20,1/1,0,2026-12-05,\n"
    + "42060,CZ mobile special,CZK,9.00,60/60,0,2026-01-01,2026-06-30\n"
    + "1,USA,CZK,0.90,60/1,0.50,2026-01-01,\n"
    + "36,Hungary,EUR,0.10,60/60,0,2026-01-01,\n",
    "test.csv",
)
TODAY, YESTERDAY = date(2026, 12, 5), date(2026, 12, 4)
PRAGUE = ZoneInfo("Europe/Prague")


@pytest.mark.parametrize(
    ("number", "day", "prefix", "destination"),
    [
        ("+420601123456", TODAY, "4206", "CZ mobile"),  # the longer prefix wins over 420
        ("+420601123456", YESTERDAY, "4206", "CZ mobile old"),  # valid until yesterday
        # 42060's row expired in June: the longest prefix *valid* that day is 4206
        ("+420601123456", date(2026, 7, 1), "4206", "CZ mobile old"),
        ("+420601123456", date(2026, 6, 30), "42060", "CZ mobile special"),
        ("+420212345678", TODAY, "420", "CZ fixed"),
        ("0012125550100", TODAY, "1", "USA"),
    ],
)
def test_longest_prefix_valid_on_the_day(
    number: str, day: date, prefix: str, destination: str
) -> None:
    rate = PRICES.rate(normalise(number, "420"), day)
    assert (rate.prefix, rate.destination) == (prefix, destination)


def test_no_row_valid_before_the_list_starts() -> None:
    with pytest.raises(NoPrice, match="no price for 420212345678 on 2025-12-31"):
        PRICES.rate("420212345678", date(2025, 12, 31))


@pytest.mark.parametrize(
    ("number", "seconds", "price_minor"),
    [
        ("212345678", 1, 60),  # 60/60: a started minute
        ("212345678", 60, 60),
        ("212345678", 61, 120),
        ("212345678", 0, 0),  # nothing billed, no setup fee either
        ("601123456", 61, 122),  # 1/1 at 1.20/min: 61 s = 1.22
        ("601123456", 1, 2),  # 0.02 exactly
        ("0012125550100", 1, 140),  # 60/1: first minute 0.90 + setup 0.50
        ("0012125550100", 61, 142),  # + 1 s of 0.90/min = 0.015, rounded once: 1.415 -> 1.42
        ("0012125550100", 90, 185),  # 0.50 + 90 s * 0.015 = 1.85
    ],
)
def test_increments_setup_fee_and_rounding_once_per_call(
    number: str, seconds: int, price_minor: int
) -> None:
    assert PRICES.quote(number, TODAY, seconds, "420").price_minor == price_minor


def test_half_up_on_the_call_not_on_each_increment() -> None:
    # 0.01/min per second: each second is 0.0001666; per-second rounding would give 0
    tiny = pricelist.parse(HEAD + "44,UK,CZK,0.01,1/1,0,2026-01-01,\n")
    assert tiny.quote("+44123456", TODAY, 30, "420").price_minor == 1  # 0.005 -> 0.01


@pytest.mark.parametrize(
    ("number", "digits"),
    [
        ("+420 601 123 456", "420601123456"),
        ("00420601123456", "420601123456"),
        ("601123456", "420601123456"),
        ("0601-123-456", "420601123456"),  # a trunk 0
        ("+1 (212) 555-0100", "12125550100"),
    ],
)
def test_numbers_in_any_notation(number: str, digits: str) -> None:
    assert normalise(number, "420") == digits


@pytest.mark.parametrize("number", ["", "+", "abc", "+420x601", "00" + "1" * 16])
def test_not_a_number(number: str) -> None:
    with pytest.raises(NumberError, match="expected"):
        normalise(number, "420")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("42O,X,CZK,1,60/60,0,2026-01-01,", "test.csv:3: prefix: expected international digits"),
        ("421,X,CZK,1.5.0,60/60,0,2026-01-01,", "test.csv:3: price_per_minute: expected a decimal"),
        ("421,X,CZK,1,60/0,0,2026-01-01,", "test.csv:3: increments: expected first/next"),
        ("421,X,CZK,1,60,0,2026-01-01,", "test.csv:3: increments"),
        ("421,X,XXX,1,60/60,0,2026-01-01,", "test.csv:3: currency"),
        ("421,X,CZK,1,60/60,0,2026-13-01,", "test.csv:3: valid_from: expected a date"),
        ("421,X,CZK,1,60/60,0,2026-02-01,2026-01-01", "test.csv:3: valid_to"),
        ("421,X,CZK,1,60/60,0", "test.csv:3: expected 8 columns, got 6"),
        # the same prefix twice in overlapping periods: which price applies is unknown
        (
            "420,Y,CZK,1,60/60,0,2026-06-01,2026-06-30",
            "test.csv:3: valid_from/valid_to: prefix 420 overlaps line 2",
        ),
    ],
)
def test_bad_price_list_lines_are_named(row: str, message: str) -> None:
    text = HEAD + "420,CZ,CZK,0.60,60/60,0,2026-01-01,\n" + row + "\n"
    with pytest.raises(PriceListError) as e:
        pricelist.parse(text, "test.csv")
    assert message in str(e.value)


def test_adjacent_periods_of_one_prefix_are_fine_and_bad_header_refused() -> None:
    pricelist.parse(
        HEAD + "420,A,CZK,1,60/60,0,2026-01-01,2026-06-30\n420,B,CZK,1,60/60,0,2026-07-01,\n"
    )
    with pytest.raises(PriceListError, match=r"x\.csv:1: header"):
        pricelist.parse("prefix,price\n420,1\n", "x.csv")


def test_the_demo_price_list_loads() -> None:
    assert pricelist.load(str(DEMO_PRICE_LIST)).rate("420601123456", TODAY).prefix == "4206"


# --- CDR files ------------------------------------------------------------------------------

# cdr_csv's Master.csv: 16 columns, then uniqueid and userfield (the defaults)
ASTERISK = (
    '"1001","601000001","+420601123456","from-internal","""Jana"" <601000001>","SIP/1001-0001",'
    '"SIP/trunk-0002","Dial","SIP/trunk/+420601123456","2026-12-05 10:00:00",'
    '"2026-12-05 10:00:05","2026-12-05 10:01:06",66,61,"ANSWERED","DOCUMENTATION",'
    '"1733392800.1",""\n'
    '"1001","601000001","212345678","from-internal","","SIP/1001-0003","","Dial","",'
    '"2026-12-05 11:00:00","","2026-12-05 11:00:20",20,0,"NO ANSWER","DOCUMENTATION",'
    '"1733396400.2",""\n'
    '"1001","601000001","212345678","from-internal","","SIP/1001-0004","","Dial","",'
    '"2026-12-05 25:00:00","2026-12-05 12:00:01","2026-12-05 12:00:31",31,30,"ANSWERED",'
    '"DOCUMENTATION","1733400000.3",""\n'
    '"1001","601000001"\n'
    # 16 columns only (loguniqueid off): the call's id is a digest
    '"1002","601000002","0012125550100","from-internal","","SIP/1002-0005","","Dial","",'
    '"2026-12-05 13:00:00","2026-12-05 13:00:01","2026-12-05 13:01:31",91,90,"ANSWERED",'
    '"DOCUMENTATION"\n'
)


def test_asterisk_master_csv_read_skipped_and_refused_by_line() -> None:
    parsed = cdr.parse(ASTERISK.encode(), "Master.csv", "asterisk-csv", PRAGUE)
    assert [(c.line, c.call_id[:3], c.contract, c.seconds) for c in parsed.calls] == [
        (1, "173", "1001", 61),
        (5, "h" + parsed.calls[1].call_id[1:3], "1002", 90),
    ]
    first = parsed.calls[0]
    assert first.call_id == "1733392800.1"
    assert first.started_at == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)  # Prague is UTC+1
    assert parsed.skipped == {"NO ANSWER": 1}
    assert [r.render("Master.csv") for r in parsed.refused] == [
        "Master.csv:3: start (column 10): expected a time YYYY-MM-DD HH:MM:SS,"
        " got '2026-12-05 25:00:00'",
        "Master.csv:4: columns: expected 16 to 21 columns (cdr_csv), got '2'",
    ]
    assert parsed.lines == 5
    again = cdr.parse(ASTERISK.encode(), "other.csv", "asterisk-csv", PRAGUE)
    assert again.calls[1].call_id == parsed.calls[1].call_id  # the digest is stable


def test_mapped_csv_with_a_header(tmp_path: object) -> None:
    mapping = cdr.load_mapping(str(cdr.MAPPINGS / "generic.toml"))
    data = (
        b"Call ID,Account,From,To,Start,Billed seconds,Status\n"
        b"c1,1001,601000001,+420601123456,2026-12-05 10:00:00,61,ANSWERED\n"
        b"c2,1001,601000001,+420601123456,2026-12-05 10:00:00,61,BUSY\n"
        b"c3,,601000001,+420601123456,2026-12-05 10:00:00,61,ANSWERED\n"
    )
    parsed = cdr.parse(data, "pbx.csv", "csv", PRAGUE, mapping)
    assert [c.call_id for c in parsed.calls] == ["c1"]
    assert parsed.skipped == {"BUSY": 1}
    assert [r.render("pbx.csv") for r in parsed.refused] == [
        "pbx.csv:4: Account (contract): expected the contract number, got ''"
    ]
    with pytest.raises(cdr.CdrRejected, match=r"pbx\.csv:1: header: expected the columns"):
        cdr.parse(b"When,Who\n", "pbx.csv", "csv", PRAGUE, mapping)


def test_a_file_that_is_not_utf8_names_its_line() -> None:
    with pytest.raises(cdr.CdrRejected, match=r"Master\.csv:2: expected utf-8 text"):
        cdr.parse(b'"1001"\n"\xff"\n', "Master.csv", "asterisk-csv", PRAGUE)


def test_rating_refuses_unknown_contract_no_price_and_foreign_currency() -> None:
    data = (
        b"Call ID,Account,From,To,Start,Billed seconds,Status\n"
        b"c1,1001,601000001,+420601123456,2026-12-05 10:00:00,61,ANSWERED\n"
        b"c2,9999,601000001,+420601123456,2026-12-05 10:00:00,61,ANSWERED\n"
        b"c3,1001,601000001,+999123,2026-12-05 10:00:00,61,ANSWERED\n"
        b"c4,1001,601000001,+3612345678,2026-12-05 10:00:00,61,ANSWERED\n"
        b"c1,1001,601000001,+420601123456,2026-12-05 10:00:00,61,ANSWERED\n"
    )
    mapping = cdr.load_mapping(str(cdr.MAPPINGS / "generic.toml"))
    parsed = cdr.parse(data, "pbx.csv", "csv", PRAGUE, mapping)
    terms = {"1001": domain.Terms("CZK", prepaid=True)}
    rating = domain.rate(parsed, PRICES, terms, PRAGUE, "420")
    assert [(r.contract, r.call.price_minor, r.call.prepaid) for r in rating.rated] == [
        ("1001", 122, True)
    ]
    assert rating.duplicates == 1
    assert [(r.line, r.column, r.problem[:30]) for r in rating.refused] == [
        (3, "contract", "expected a contract number voi"),
        (4, "number", "expected a price for it on 202"),
        (5, "number", "price list line 7 prices it in"),
    ]


def test_calls_rated_events_hold_at_most_1000_calls() -> None:
    call = domain.rate(
        cdr.parse(ASTERISK.encode(), "M.csv", "asterisk-csv", PRAGUE),
        PRICES,
        {"1001": domain.Terms("CZK", False), "1002": domain.Terms("CZK", False)},
        PRAGUE,
        "420",
    ).rated[0]
    parts = domain.events_of([call] * 2500)
    assert [len(p) for p in parts["1001"]] == [1000, 1000, 500]


# --- prepaid credit -------------------------------------------------------------------------


def test_low_and_exhausted_once_each_rearmed_only_by_a_top_up() -> None:
    credit, said = domain.Credit(), []
    for change in (10000, -4000, -2000, -1000, -3000, -500, 200, 20000, -16000):
        step = domain.change_credit(credit, change, threshold_minor=5000)
        credit = step.credit
        said.append((credit.balance_minor, step.low, step.exhausted))
    assert said == [
        (10000, False, False),
        (6000, False, False),
        (4000, True, False),  # fell below the threshold: low, once
        (3000, False, False),
        (0, False, True),  # reached zero: exhausted, once
        (-500, False, False),
        (-300, False, False),  # a top-up that leaves it at or below zero re-arms nothing
        (19700, False, False),  # lifted above both: re-armed
        (3700, True, False),  # below again: low again
    ]


def test_one_call_from_above_the_threshold_to_below_zero_says_both() -> None:
    step = domain.change_credit(domain.Credit(6000), -7000, 5000)
    assert (step.low, step.exhausted, step.credit.balance_minor) == (True, True, -1000)


# --- the price lookup -----------------------------------------------------------------------


def test_billing_voip_price(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.cli import main

    prices = tmp_path / "prices.csv"
    prices.write_text(
        HEAD + "1,USA,CZK,0.90,60/1,0.50,2026-01-01,2026-12-31\n"
        "1,USA,CZK,0.60,60/1,0.50,2027-01-01,\n"
    )
    monkeypatch.setenv("BILLING_VOIP_PRICE_LIST", str(prices))
    main(["voip", "price", "+1 212 555 0100", "--seconds", "61", "--at", "2026-12-31", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert (out["destination"], out["increments"], out["setup_fee"]) == ("USA", "60/1", "0.50")
    assert (out["billed_seconds"], out["price_minor"]) == (61, 142)
    main(["voip", "price", "0012125550100", "--seconds", "61", "--at", "2027-01-01"])
    assert "61 s cost 1.11 CZK" in capsys.readouterr().out  # the new price from 2027
    with pytest.raises(SystemExit) as e:
        main(["voip", "price", "+999", "--at", "2027-01-01"])
    assert e.value.code == 66
    assert "no price for 999 on 2027-01-01" in capsys.readouterr().err
