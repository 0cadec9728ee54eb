"""The contact rules (schemas/contacts.py) and where they hold: the event model and the
contracts file, whose error names the file, record, contract, field and position."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import contacts
from schemas import events as ev
from services.invoicing.contracts_file import ContractsFileError, read


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("jan@example.com", "jan@example.com"),
        ("Jan.Novak@EXAMPLE.COM", "Jan.Novak@example.com"),  # the domain is case-blind
        ("účetní@příklad.cz", "účetní@příklad.cz"),
    ],
)
def test_email_addresses_that_pass(given: str, stored: str) -> None:
    assert contacts.email_address(given) == stored


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("jan@example.com\r\nBcc: all@example.com", r"character 16 is U\+000D \(CR\)"),
        ("jan@example.com\n", r"character 16 is U\+000A \(LF\)"),
        ("jan\x00@example.com", r"character 4 is U\+0000"),
        ("jan\u202e@example.com", r"character 4 is U\+202E \(RIGHT-TO-LEFT OVERRIDE\)"),
        ("Jan <jan@example.com>", "display name"),
        ("jan@localhost", "not an e-mail address"),
        ("jan@@example.com", "not an e-mail address"),
        ("jan@example.test", "special-use"),
        ("", "not an e-mail address"),
    ],
)
def test_email_addresses_refused_say_why(given: str, why: str) -> None:
    with pytest.raises(contacts.ContactError, match=why):
        contacts.email_address(given)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("+420 602 000 001", "+420602000001"),
        ("602000001", "+420602000001"),  # no prefix: Czech
        ("00420602000001", "+420602000001"),
        ("+421 905 000 001", "+421905000001"),
        ("+36 30 123 4567", "+36301234567"),
    ],
)
def test_phone_numbers_are_stored_in_e164(given: str, stored: str) -> None:
    assert contacts.phone_number(given) == stored


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("0905 123 456", r"valid phone number of CZ \(Slovak and Hungarian numbers need"),
        ("+420 123", "not a valid phone number"),
        ("call me", "not a phone number"),
        ("+420602000001\r\n", r"character 14 is U\+000D"),
        ("+420 602 000 001 ext. 12", "extension"),
    ],
)
def test_phone_numbers_refused_say_why(given: str, why: str) -> None:
    with pytest.raises(contacts.ContactError, match=why):
        contacts.phone_number(given)


def test_the_event_model_applies_the_rules_to_every_field() -> None:
    c = ev.Contact(name="Jan", email="jan@EXAMPLE.com", phone="602 000 001")
    assert (c.email, c.phone) == ("jan@example.com", "+420602000001")
    for bad in (
        {"name": "Jan\r\nX"},
        {"name": "Jan", "language": "cs\n"},
        {"name": "Jan", "categories": ["dunning\t"]},
        {"name": "Jan", "email": "a@b.cz\r\n"},
        {"name": "Jan", "phone": "12"},
    ):
        with pytest.raises(ValidationError):
            ev.Contact.model_validate(bad)
    with pytest.raises(ValidationError, match=r"contacts\.0\.email"):
        ev.ContractUpserted.model_validate(
            {"contract": "1", "customer_name": "Jan", "currency": "CZK", "monthly_fee_minor": 1,
             "contacts": [{"name": "Jan", "email": "jan@example.com\n"}]}
        )  # fmt: skip


def _file(tmp_path: Path, contact: dict[str, object]) -> Path:
    f = tmp_path / "contracts.json"
    items = [
        {"contract": "1001", "customer_name": "A", "currency": "CZK", "monthly_fee_minor": 1},
        {"contract": "1002", "customer_name": "B", "currency": "CZK", "monthly_fee_minor": 1,
         "contacts": [{"name": "B", "email": "b@example.com"}, contact]},
    ]  # fmt: skip
    f.write_text(json.dumps({"contracts": items}, indent=1))
    return f


def test_contracts_load_names_contract_field_and_position(tmp_path: Path) -> None:
    f = _file(tmp_path, {"name": "C", "email": "c@example.com\r\nBcc: x@example.com"})
    with pytest.raises(ContractsFileError) as err:
        read(f)
    message = str(err.value)
    assert message.startswith(f"{f}: line ")
    assert "contracts[1]: field 'contacts[1].email' of contract 1002: character 14 is" in message
    assert "U+000D (CR)" in message

    f = _file(tmp_path, {"name": "C", "phone": "0905 000 001"})
    with pytest.raises(ContractsFileError, match=r"'contacts\[1\]\.phone' of contract 1002"):
        read(f)


def test_contracts_csv_phone_stored_in_e164(tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text(
        "contract,customer_name,email,phone,currency,monthly_fee\n"
        "2001,Jana,jana@example.com,+421 905 000 001,EUR,19.90\n"
    )
    (r,) = read(f)
    assert r.contract.contacts[0].phone == "+421905000001"
    f.write_text("contract,customer_name,email,currency,monthly_fee\n2001,Jana,jana@,EUR,19.90\n")
    with pytest.raises(ContractsFileError, match=r"line 2: field 'contacts\[0\]\.email' of c"):
        read(f)
