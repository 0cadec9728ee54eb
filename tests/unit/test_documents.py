"""The document model: proration, rounding, credit-note arithmetic, what is left due,
numbering and validation."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest

from services.invoicing import documents as d
from tests.unit.document_samples import CUSTOMERS, SUPPLIERS, invoice, non_payer_invoice

DEC = (date(2026, 12, 1), date(2026, 12, 31))


# --- proration ---------------------------------------------------------------------------


def test_a_service_starting_mid_period_is_billed_for_its_days() -> None:
    [segment] = d.prorate(*DEC, 49_900, active_from=date(2026, 12, 15))
    assert (segment.start, segment.end, segment.share) == (
        date(2026, 12, 15),
        DEC[1],
        Fraction(17, 31),
    )


def test_a_service_ending_mid_period_counts_its_last_day() -> None:
    [segment] = d.prorate(*DEC, 49_900, active_to=date(2026, 12, 10))
    assert segment.share == Fraction(10, 31)


def test_a_price_change_mid_period_splits_the_period_at_its_day() -> None:
    segments = d.prorate(
        date(2028, 2, 1),
        date(2028, 2, 29),
        49_900,
        changes=[d.PriceChange(date(2027, 6, 1), 45_900), d.PriceChange(date(2028, 2, 20), 59_900)],
    )
    assert [(s.start.day, s.end.day, s.unit_price_minor, s.share) for s in segments] == [
        (1, 19, 45_900, Fraction(19, 29)),  # the 2027 change set the price the period starts at
        (20, 29, 59_900, Fraction(10, 29)),  # leap February: 29 days
    ]
    assert sum(s.share for s in segments) == 1


def test_a_service_not_active_in_the_period_is_not_billed() -> None:
    assert d.prorate(*DEC, 49_900, active_from=date(2027, 1, 1)) == []
    assert d.prorate(*DEC, 49_900, active_to=date(2026, 11, 30)) == []


def test_prorated_base_is_price_times_days_over_days_rounded_once() -> None:
    doc = invoice("CZ")
    internet = doc.lines[0]
    assert internet.share == Fraction(17, 31)
    assert internet.base_minor == 27_365  # 499.00 x 17/31 = 273.645... -> 273.65


# --- rounding ----------------------------------------------------------------------------


def test_vat_is_rounded_per_rate_on_the_document_and_lines_add_up() -> None:
    # Three lines of 0.02 CZK at 21 %: each line's own VAT would round to 0, the
    # document's (0.06 x 21 % = 0.0126 -> 0.01) does not; the lines share it out.
    items = [d.Item(f"SMS {n}", Decimal(1), "piece", 2) for n in range(3)]
    doc = invoice("CZ", items=items)
    assert [r.vat_minor for r in doc.recap] == [1]
    assert [line.vat_minor for line in doc.lines] == [1, 0, 0]
    assert sum(line.vat_minor for line in doc.lines) == doc.vat_minor


def test_each_rate_has_its_row_in_the_recapitulation_highest_first() -> None:
    items = [
        d.Item("Internet", Decimal(1), "month", 690_000, "reduced2"),
        d.Item("Router", Decimal(1), "piece", 1_990_000, "standard"),
        d.Item("Internet 2", Decimal(1), "month", 10_050, "reduced2"),
    ]
    doc = invoice("HU", items=items)
    assert [(r.vat_rate, r.base_minor, r.vat_minor) for r in doc.recap] == [
        (Decimal(27), 1_990_000, 537_300),
        (Decimal(5), 700_100, 35_000),  # 7,001 Ft x 5 % = 350.05 -> 350 Ft
    ]


def test_hungarian_amounts_are_whole_forints() -> None:
    doc = invoice("HU")
    amounts = [x for line in doc.lines for x in (line.base_minor, line.vat_minor)]
    assert all(a % 100 == 0 for a in [*amounts, doc.total_minor])


def test_share_out_is_exact_and_fair() -> None:
    assert d.share_out(10, [1, 1, 1]) == [4, 3, 3]
    assert d.share_out(300, [1, 1, 1], unit=100) == [100, 100, 100]
    assert d.share_out(0, [5, 5]) == [0, 0]
    assert sum(d.share_out(997, [13, 29, 31, 7])) == 997


# --- credit notes ------------------------------------------------------------------------


def test_a_full_credit_note_returns_exactly_the_invoice() -> None:
    original = invoice("SK")
    note = d.build_credit_note(original, "D2027000001", date(2027, 1, 20), "Storno")
    assert note.kind == "credit_note" and note.sign == -1
    assert note.original == d.OriginalRef("2026000001", date(2027, 1, 2), date(2026, 12, 31))
    assert [(r.vat_rate, r.base_minor, r.vat_minor) for r in note.recap] == [
        (r.vat_rate, r.base_minor, r.vat_minor) for r in original.recap
    ]
    assert [line.original_line for line in note.lines] == [1, 2, 3]
    assert d.balance(original, [note], paid_minor=0) == d.Balance(0, 0, 0)


def test_partial_credit_notes_that_add_up_to_everything_return_exactly_its_vat() -> None:
    # Three lines of 0.01 CZK at 21 %: the invoice's VAT is 0.01 (0.0063 rounds up); three
    # notes crediting a line each would naively credit 0 VAT each and leave 0.01 behind.
    items = [d.Item(f"SMS {n}", Decimal(1), "piece", 1) for n in range(3)]
    original = invoice("CZ", items=items, number="2026000002")
    assert original.vat_minor == 1
    notes: list[d.Document] = []
    for n in (1, 2, 3):
        credited = d.credited_per_line(original, notes)
        notes.append(
            d.build_credit_note(
                original,
                f"D202700000{n}",
                date(2027, 1, 20),
                "Reklamace",
                [d.CreditPart(n, 1)],
                credited,
            )
        )
    assert sum(note.vat_minor for note in notes) == original.vat_minor
    assert sum(note.total_minor for note in notes) == original.total_minor
    with pytest.raises(d.DocumentError, match="fully credited already"):
        d.build_credit_note(
            original,
            "D2027000004",
            date(2027, 1, 20),
            "Again",
            None,
            d.credited_per_line(original, notes),
        )


def test_a_partial_credit_note_leaves_the_rest_due() -> None:
    original = invoice("CZ")
    note = d.build_credit_note(
        original, "D2027000001", date(2027, 1, 10), "Výpadek služby", [d.CreditPart(1, 10_000)]
    )
    assert (note.base_minor, note.vat_minor) == (10_000, 2_100)
    assert note.lines[0].unit == "lump" and note.lines[0].original_line == 1
    left = d.balance(original, [note], paid_minor=0)
    assert left.due_minor == original.total_minor - 12_100
    assert left.outstanding_minor == left.due_minor and not left.settled


def test_credit_after_payment_becomes_the_customers_credit() -> None:
    original = invoice("CZ")
    note = d.build_credit_note(
        original, "D2027000001", date(2027, 1, 10), "Sleva", [d.CreditPart(3, 50_000)]
    )
    left = d.balance(original, [note], paid_minor=original.total_minor)
    assert left.outstanding_minor == 0 and left.settled
    assert left.credit_minor == note.total_minor == 60_500


def test_a_credit_note_cannot_credit_more_than_is_left() -> None:
    original = invoice("CZ")
    with pytest.raises(d.DocumentError) as bad:
        d.build_credit_note(
            original,
            "",
            date(2026, 1, 1),
            " ",
            [d.CreditPart(1, 27_366), d.CreditPart(9, 1), d.CreditPart(2, 0)],
        )
    text = str(bad.value)
    for expected in (
        "number: must not be empty",
        "reason: a credit note must say why",
        "issued_on: 2026-01-01 is before the invoice's issue date 2027-01-02",
        "parts[0].base_minor: 27366, expected more than 0 and at most 27365",
        "parts[1].line: 9, the invoice has lines 1 to 3",
        "parts[2].base_minor: 0",
    ):
        assert expected in text


def test_credit_notes_are_numbered_in_their_own_gapless_yearly_series() -> None:
    assert d.credit_note_number(2027, 1) == "D2027000001"
    assert d.credit_note_number(2027, 12, "yy8") == "D2700000012"
    assert d.next_sequence(None, 0, 2027) == 1
    assert d.next_sequence(2027, 41, 2027) == 42
    assert d.next_sequence(2026, 977, 2027) == 1
    with pytest.raises(d.DocumentError, match="before the series' last year"):
        d.next_sequence(2027, 5, 2026)


# --- validation --------------------------------------------------------------------------


def test_every_bad_field_is_named_at_once() -> None:
    supplier = replace(SUPPLIERS["CZ"], company_id="12345678", bank_account="123", tax_id="25")
    with pytest.raises(d.DocumentError) as bad:
        d.build_invoice(
            d.InvoiceSpec(
                number="2026000001",
                contract="1001",
                supplier=supplier,
                customer=CUSTOMERS["CZ"],
                language="de",
                currency="EUR",
                issued_on=date(2027, 1, 2),
                tax_point_on=date(2026, 12, 31),
                due_on=date(2027, 1, 1),
                vs="10a1",
                ss=None,
                items=[d.Item("", Decimal(-1), "box", 100, "luxury")],
            )
        )
    text = str(bad.value)
    for expected in (
        "supplier.company_id: '12345678' is not a valid IČO",
        "supplier.tax_id: '25', expected CZ and 8 to 10 digits",
        "supplier.bank_account: '123', expected an IBAN or prefix-number/bank",
        "language: 'de'",
        "currency: 'EUR', a supplier in CZ invoices in CZK",
        "due_on: 2027-01-01 is before the issue date 2027-01-02",
        "vs: '10a1', expected 1 to 10 digits",
        "items[0].description: must not be empty",
        "items[0].quantity: -1, expected more than 0",
        "items[0].unit: 'box'",
        "items[0].vat_category: VAT category 'luxury'",
    ):
        assert expected in text


def test_a_rate_that_no_longer_exists_names_the_item() -> None:
    items = [d.Item("Kniha", Decimal(1), "piece", 30_000, "reduced2")]
    with pytest.raises(d.DocumentError, match=r"items\[0\].vat_category: CZ has no 'reduced2'"):
        invoice("CZ", items=items, tax_point=date(2024, 1, 1))
    assert invoice("CZ", items=items, tax_point=date(2023, 12, 31)).recap[0].vat_rate == 10


def test_supplier_configuration_is_checked_per_country() -> None:
    for supplier in SUPPLIERS.values():
        assert d.supplier_problems(supplier) == []
    bad = replace(SUPPLIERS["SK"], vat_id="CZ25596641", bank_account="SK0011000000002612345678")
    assert d.supplier_problems(bad) == [
        "supplier.vat_id: 'CZ25596641', expected SK and 10 digits (IČ DPH)",
        "supplier.bank_account: 'SK0011000000002612345678' fails the IBAN check",
    ]


def test_reverse_charge_and_non_payer_invoices_charge_no_vat() -> None:
    business = replace(CUSTOMERS["SK"], company_id="35763469", vat_id="SK2020202020")
    reverse = invoice("CZ", customer=business, language="sk")
    assert reverse.treatment == "reverse_charge" and reverse.vat_minor == 0
    assert [r.vat_rate for r in reverse.recap] == [None]
    assert reverse.notes[0].startswith("Daň odvede zákazník")
    assert reverse.notes[1].startswith("Prenesenie daňovej povinnosti")
    doc = non_payer_invoice()
    assert doc.treatment == "not_vat_payer" and doc.vat_minor == 0
    assert doc.notes == ("Dodavatel není plátcem DPH.",)
