import json
from pathlib import Path

import pytest

from services.invoicing import contracts_file
from services.invoicing.contracts_file import ContractsFileError, read, records

DEMO = Path(__file__).parents[2] / "services" / "devstack" / "demo_data" / "contracts.json"


def test_demo_contracts_read() -> None:
    records = read(DEMO)
    assert [r.contract.contract for r in records] == ["1001", "1002", "1003"]
    assert records[1].contract.contacts[1].categories == ["billing", "dunning"]
    assert records[0].due_rule.value == 15


def test_csv_contracts(tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text(
        "contract,customer_name,email,currency,monthly_fee,due_day,ipv4\n"
        "2001,Jana,jana@example.sk,EUR,19.90,20,100.64.0.7 100.64.0.8\n"
    )
    (r,) = read(f)
    assert r.contract.monthly_fee_minor == 1990 and r.contract.currency == "EUR"
    assert r.contract.subscribers.ipv4 == ["100.64.0.7", "100.64.0.8"]
    assert r.due_rule.kind == "day_of_month" and r.due_rule.value == 20


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "contract,customer_name,currency,monthly_fee\n2001,Jana,EUR,abc\n",
            "line 2: field 'monthly_fee'",
        ),
        (
            "contract,customer_name,currency,monthly_fee\n2001,Jana,euro,1\n",
            "line 2: field 'currency'",
        ),
        (
            "contract,customer_name,currency,monthly_fee\n01,Jana,EUR,1\n",
            "line 2: field 'contract'",
        ),
        ("contract,customer_name,currency\n2001,Jana,EUR\n", "missing columns"),
        (
            "contract,customer_name,currency,monthly_fee\n2001,A,EUR,1\n2001,B,EUR,1\n",
            "appears twice",
        ),
    ],
)
def test_csv_errors_name_file_line_and_field(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(ContractsFileError, match=message) as err:
        read(f)
    assert str(f) in str(err.value)


def test_json_error_names_the_record(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text(
        '[{"contract": "1", "customer_name": "x", "currency": "CZK", "monthly_fee_minor": -5}]'
    )
    with pytest.raises(ContractsFileError, match=r"contracts\[0\]: field 'monthly_fee_minor'"):
        read(f)


def _contract(i: int, fee: int | float = 49900) -> dict[str, object]:
    return {
        "contract": str(5000 + i), "customer_name": f"Zákazník {i}", "currency": "CZK",
        "monthly_fee_minor": fee, "due": {"day_of_month": 1 + i % 28},
        "subscribers": {"ipv4": [f"10.0.{i // 256}.{i % 256}"]},
    }  # fmt: skip


@pytest.mark.parametrize("indent", [None, 2])
def test_json_streams_in_small_reads_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indent: int | None
) -> None:
    """Read a few characters at a time, the file gives the records one read gives: values
    cut anywhere by a read's end (a number 4|9900, a string, an object) are read whole."""
    f = tmp_path / "c.json"
    doc = {"exported": 12345, "contracts": [_contract(i) for i in range(40)], "by": "ISPadmin"}
    f.write_text(json.dumps(doc, indent=indent, ensure_ascii=False), encoding="utf-8")
    whole = [(r.contract, r.due_rule) for r in read(f)]
    assert len(whole) == 40 and whole[39][1].value == 1 + 39 % 28
    for size in (1, 2, 3, 5, 7, 64, 1000):
        monkeypatch.setattr(contracts_file, "READ_SIZE", size)
        assert [(r.contract, r.due_rule) for r in records(f)] == whole, size


def test_json_streams_a_bare_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.json"
    f.write_text(json.dumps([_contract(i) for i in range(3)]) + "\n\n")
    monkeypatch.setattr(contracts_file, "READ_SIZE", 4)
    assert [r.contract.contract for r in records(f)] == ["5000", "5001", "5002"]
    f.write_text("[]")
    assert read(f) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"contracts": 5}', r"expected a list of contracts or"),
        ('{"customers": []}', r"expected a list of contracts or"),
        ("7", r"expected a list of contracts or"),
        ('[\n{"contract": "1",\n "x": tru}\n]', r"line 3: invalid JSON"),
        (
            "[\n\n" + json.dumps(_contract(1)) + " " + json.dumps(_contract(2)) + "]",
            r"line 3: invalid JSON: expected ',' or ']'",
        ),
        ("[]\n[]", r"line 2: invalid JSON: extra data after the contracts"),
        ('{"contracts": [] "x": 1}', r"line 1: invalid JSON: expected ',' or '}'"),
        ("{5: []}", r"line 1: invalid JSON"),
        (
            "[" + json.dumps(_contract(1)) + ",\n" + json.dumps(_contract(1)) + "]",
            r"line 2: contracts\[1\]: contract 5001 appears twice in the file",
        ),
        (
            "[" + json.dumps(_contract(1)) + ",\n" + json.dumps(_contract(2, fee=4.5)) + "]",
            r"line 2: contracts\[1\]: field 'monthly_fee_minor'",
        ),
    ],
)
def test_json_errors_name_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    f = tmp_path / "bad.json"
    f.write_text(text)
    for size in (3, 1 << 20):
        monkeypatch.setattr(contracts_file, "READ_SIZE", size)
        with pytest.raises(ContractsFileError, match=message) as err:
            read(f)
        assert str(err.value).startswith(f"{f}: ")


def test_json_error_found_where_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken record is reported from the reads that reach it, not after the rest of a
    large file has been read in behind it; values cut by a read's end are still whole."""
    f = tmp_path / "big.json"
    good = ",\n".join(json.dumps(_contract(i)) for i in range(2, 3000))
    f.write_text('[\n{"contract": "1", "monthly_fee_minor": tru},\n' + good + "]")
    monkeypatch.setattr(contracts_file, "READ_SIZE", 37)
    reads: list[int] = []
    real_open = Path.open

    def counting_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        fh = real_open(self, *args, **kwargs)  # type: ignore[arg-type]
        read = fh.read

        def counted(size: int = -1) -> str:
            reads.append(size)
            return read(size)

        fh.read = counted
        return fh

    monkeypatch.setattr(Path, "open", counting_open)
    with pytest.raises(ContractsFileError, match=r"line 2: invalid JSON: Expecting value"):
        read(f)
    assert sum(reads) < 200, reads  # of some 380,000 characters


BASE = {"contract": "7001", "customer_name": "Jana", "currency": "CZK"}
FEE = {"monthly_fee_minor": 49900}
TARIFF = {"description": "Internet", "unit_price_minor": 49900}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"services": [{**TARIFF, "unit_price_minor": -1}]},
            "field 'services[0].unit_price_minor' of contract 7001: Input should be greater",
        ),
        (
            {"services": [{**TARIFF, "vat_category": "luxury"}]},
            "field 'services[0].vat_category' of contract 7001: Input should be 'standard'",
        ),
        (
            {"services": [{**TARIFF, "starts_on": "2027-03-01", "ends_on": "2027-02-01"}]},
            "field 'services[0]' of contract 7001: ends_on 2027-02-01 is before starts_on",
        ),
        (
            {"services": [{**TARIFF, "every": "week"}]},
            "field 'services[0].every' of contract 7001",
        ),
        (
            {"services": [{**TARIFF, "price_changes": [{"effective_on": "someday"}]}]},
            "field 'services[0].price_changes[0].effective_on' of contract 7001",
        ),
        (
            {**FEE, "one_off_items": [{"key": "a", "description": "Router",
                                       "unit_price_minor": 1, "unit": "kg"}]},
            "field 'one_off_items[0].unit' of contract 7001",
        ),
        (
            {**FEE, "one_off_items": [{"key": "a", "description": "Router",
                                       "unit_price_minor": 1, "invoice": "own"}]},
            "field 'one_off_items[0].invoice' of contract 7001: 'own' is issued at once",
        ),
        (
            {**FEE, "address": {"street": "Dlouhá", "city": "Brno"}},
            "field 'address.postal_code' of contract 7001: Field required",
        ),
        ({**FEE, "vat_id": "not an id"}, "field 'vat_id' of contract 7001"),
        (
            {**FEE, "prices_include_vat": False},
            "field 'prices_include_vat' of contract 7001: only with 'services'",
        ),
    ],
)  # fmt: skip
def test_billing_errors_name_the_contract_and_field(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    f = tmp_path / "c.json"
    f.write_text(json.dumps([{**BASE, **changes}]))
    with pytest.raises(ContractsFileError, match="line 1: contracts\\[0\\]") as e:
        read(f)
    assert message in str(e.value)


def test_services_need_no_monthly_price_and_a_monthly_price_is_a_tariff(tmp_path: Path) -> None:
    f = tmp_path / "c.json"
    f.write_text(
        json.dumps(
            [
                {**BASE, "services": [TARIFF], "address": {"street": "Dlouhá", "city": "Brno",
                                                         "postal_code": "602 00"}},
                {**BASE, "contract": "7002", "monthly_fee_minor": 49900},
            ]
        )
    )  # fmt: skip
    services, legacy = read(f)
    assert services.contract.monthly_fee_minor == 0
    assert services.terms is not None and services.terms.services[0].unit_price_minor == 49900
    assert services.customer_data()["address"]["country"] == "CZ"
    assert legacy.terms is None  # billed as one tariff service of its monthly price
    assert legacy.customer_data() == {"name": "Jana", "address": None}


def test_contract_upserted_tells_the_services_for_the_zone() -> None:
    """The customer zone shows each service (issue 30): contract.upserted carries them,
    from the file's services, or its monthly price as one tariff."""
    a, b, _ = read(Path("services/devstack/demo_data/contracts.json"))
    assert [(s.kind, s.unit_price_minor) for s in a.contract.services or []] == [
        ("tariff", 44900),
        ("static_ip", 5000),
    ]
    assert [(s.kind, s.unit_price_minor) for s in b.contract.services or []] == [("tariff", 49900)]
