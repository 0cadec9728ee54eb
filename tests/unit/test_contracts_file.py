from pathlib import Path

import pytest

from services.invoicing.contracts_file import ContractsFileError, read

DEMO = Path(__file__).parents[2] / "services" / "demo_data" / "contracts.json"


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
