"""A billing run writes invoice.issued's data from a template: it must be the model's JSON
byte for byte, and anything the template cannot vouch for must go through the model."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from schemas.events import InvoiceIssued
from services.invoicing import domain
from services.invoicing.bills import Bills, Contract
from services.invoicing.service import IssuedJson


def _invoice(**changes: object) -> domain.NewInvoice:
    base = domain.NewInvoice(
        contract="10000001",
        invoice_number="2700000001",
        vs="10000001",
        ss="2700000001",
        period="2027-03",
        issued_on=date(2027, 3, 1),
        due_on=date(2027, 3, 15),
        amount_minor=49900,
        currency="CZK",
    )
    return base._replace(**changes)


def _model_json(inv: domain.NewInvoice, account: str) -> bytes:
    fields = inv._asdict()
    del fields["fees_minor"]
    return InvoiceIssued(**fields, account=account, kind="periodic").model_dump_json().encode()


@pytest.mark.parametrize(
    "account", ["2900000001/2010", "", 'SK31 1200 "quoted" \\ účet', "HU42\u00a0117"]
)
def test_a_run_of_invoices_is_the_models_json(account: str) -> None:
    json_of = IssuedJson(account)
    run = domain.billing_run(
        [
            domain.BillableContract(str(c), True, fee, cur, domain.DueRule(kind, value))
            for c, fee, cur, kind, value in [
                (1, 1, "CZK", "day_of_month", 31),
                (42, 49900, "EUR", "days_after_issue", 14),
                (9999999999, 10**12, "HUF", "day_of_month", 1),
                (123, 500, "CZK", "days_after_issue", 0),
            ]
        ],
        "2027-02",
        date(2027, 2, 28),
        set(),
        99,
        {"42": 150},
    )
    for inv in run:
        assert json_of(inv) == _model_json(inv, account)
        assert InvoiceIssued.model_validate_json(json_of(inv)).contract == inv.contract


def test_what_the_template_cannot_vouch_for_goes_through_the_model() -> None:
    json_of = IssuedJson("2900000001/2010")
    # the model takes any invoice number: the template only digits, so the model writes it
    odd = _invoice(invoice_number='FV-2027/"1"', ss="2700000001")
    assert json_of(odd) == _model_json(odd, "2900000001/2010")
    assert b'"invoice_number":"FV-2027/\\"1\\""' in json_of(odd)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"contract": "0123"}, "contract"),
        ({"vs": "12345678901"}, "vs"),
        ({"ss": '1","vs":"2'}, "ss"),
        ({"contract": '1","invoice_number":"2'}, "contract"),
        ({"amount_minor": 0}, "amount_minor"),
        ({"currency": "czk"}, "currency"),
        ({"period": "2027-3"}, "period"),
    ],
)
def test_what_the_model_rejects_raises_naming_the_field(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        IssuedJson("2900000001/2010")(_invoice(**changes))


def test_an_invoice_with_its_document_is_the_models_json() -> None:
    """A bill's lines and recapitulation, written once per kind of bill, make the same
    bytes as the model with them, on the template's path and on the model's."""
    from tests.unit.document_samples import SUPPLIERS

    made = Bills(SUPPLIERS["CZ"], "s", "2026-12", date(2027, 1, 2))
    contract = Contract(
        "1001", True, 49900, "CZK", domain.DueRule("day_of_month", 15), None, "CZ", "cs",
        False, "{}",
    )  # fmt: skip
    bill = made.of(contract, 5000, ['{"description": "Router", "unit_price_minor": 150000}'])
    assert bill.document is not None and len(bill.document[0]) == 3  # tariff, router, fee
    inv = _invoice(amount_minor=bill.charges_minor + 5000, fees_minor=5000)
    json_of = IssuedJson("2900000001/2010")
    expected = json_of.model(inv, bill.tail)
    assert expected.lines is not None and expected.vat is not None
    assert json_of(inv, bill.tail) == expected.model_dump_json().encode()
    odd = inv._replace(invoice_number="FV-1")  # the model's path keeps the document
    assert json_of(odd, bill.tail) == json_of.model(odd, bill.tail).model_dump_json().encode()
    assert sum(x.base_minor + x.vat_minor for x in expected.lines) == inv.amount_minor
