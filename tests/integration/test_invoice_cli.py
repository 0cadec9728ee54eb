"""The operators' invoicing commands (issue 29 item 7): show an invoice with its lines,
write its PDF or ISDOC, issue a credit note, add a one-off item, list what is not yet
delivered; and the supplier refused at start, naming the variable."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest

from services.invoicing import isdoc
from services.invoicing.settings import InvoicingSettings
from services.invoicing.worker import SPEC
from services.runtime.auth import ConfigError
from services.runtime.worker import check_startup
from tests.integration.test_cli_scripts import billing, env, one_line
from tests.integration.test_invoice_documents import CONTRACTS

__all__ = ["env"]  # the fixture


def _fetch(url: str, query: str) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(query))
        finally:
            await conn.close()

    return asyncio.run(go())


def _february(env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> str:
    """CONTRACTS loaded and February 2027 billed; the number of contract 7001's invoice."""
    contracts = tmp_path / "contracts.json"
    contracts.write_text(json.dumps(CONTRACTS), encoding="utf-8")
    assert billing(capsys, "contracts", "load", str(contracts))[0] == 0
    run = ("invoicing", "run", "--period", "2027-02", "--issued-on", "2027-03-01")
    assert billing(capsys, *run)[0] == 0
    sql = "SELECT invoice_number FROM invoicing.invoices WHERE contract = '7001'"
    return str(_fetch(env, sql)[0][0])


def test_invoice_commands(env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    number = _february(env, capsys, tmp_path)

    code, out, _ = billing(capsys, "invoice", "show", number)
    assert code == 0
    assert "Internet 300/30  2027-02-15..2027-02-28 (1/2)" in out
    assert "VAT 21 %: base 1735.12 CZK, VAT 364.38 CZK" in out and "total 2099.50 CZK" in out
    code, out, _ = billing(capsys, "invoice", "show", number, "--json")
    shown = json.loads(out)
    assert [x["description"] for x in shown["lines"]][:2] == [
        "Internet 300/30",
        "Veřejná IP adresa",
    ]
    assert shown["total_minor"] == 209950 and shown["vat"][0]["vat_rate"] == "21"

    pdf, xml = tmp_path / "i.pdf", tmp_path / "i.isdoc"
    assert billing(capsys, "invoice", "write", number, "--out", str(pdf))[0] == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    code, _, _ = billing(capsys, "invoice", "write", number, "--format", "isdoc", "--out", str(xml))
    assert code == 0
    isdoc.validate(xml.read_bytes())

    # credit 100.00 of line 1's base, then all that is left; a third has nothing to credit
    code, out, _ = billing(
        capsys, "credit-note", "issue", number, "--line", "1=100.00", "--reason", "výpadek",
        "--issued-on", "2027-03-05", "--operator", "olga",
    )  # fmt: skip
    assert code == 0 and out.startswith("D2027000001 credits 121.00 CZK of invoice")
    code, out, _ = billing(
        capsys, "credit-note", "issue", number, "--all", "--reason", "zrušení",
        "--issued-on", "2027-03-06",
    )  # fmt: skip
    assert code == 0 and "D2027000002" in out and out.strip().endswith("it now asks 0.00 CZK")
    code, _, err = billing(
        capsys, "credit-note", "issue", number, "--all", "--reason", "znovu",
    )  # fmt: skip
    assert code == 65 and "fully credited already" in one_line(err)
    code, _, err = billing(capsys, "credit-note", "issue", number, "--reason", "bez řádků")
    assert code == 64 and "--line" in one_line(err)
    code, _, err = billing(capsys, "credit-note", "issue", "2027999999", "--all", "--reason", "x")
    assert code == 66 and "no invoice or credit note 2027999999" in one_line(err)
    code, out, _ = billing(capsys, "invoice", "show", "D2027000001")
    assert code == 0 and f"credits invoice {number}: výpadek" in out
    note = tmp_path / "d.isdoc"
    args = ("invoice", "write", "D2027000001", "--format", "isdoc", "--out", str(note))
    assert billing(capsys, *args)[0] == 0
    isdoc.validate(note.read_bytes())
    trail = _fetch(
        env, "SELECT operator, action, reason FROM invoicing.operator_actions"
        " WHERE action = 'credit-note' ORDER BY id",
    )  # fmt: skip
    assert [tuple(r) for r in trail] == [
        ("olga", "credit-note", "výpadek"), (trail[1][0], "credit-note", "zrušení")
    ]  # fmt: skip

    # one-off items: on the next invoice, or at once on an invoice of its own
    code, out, _ = billing(
        capsys, "contracts", "add-item", "7002", "--description", "Router", "--price", "1500.00"
    )
    assert code == 0 and "on its next invoice" in out
    code, out, _ = billing(
        capsys, "contracts", "add-item", "7002", "--description", "Výjezd technika",
        "--price", "600.00", "--unit", "service", "--own-invoice", "--issued-on", "2027-03-02",
    )  # fmt: skip
    assert code == 0 and out.startswith("invoice 2027000004 issued for contract 7002")
    code, out, _ = billing(capsys, "invoice", "show", "2027000004", "--json")
    own = json.loads(out)
    assert [(x["description"], x["base_minor"], x["vat_minor"]) for x in own["lines"]] == [
        ("Výjezd technika", 49587, 10413)
    ]
    code, _, err = billing(
        capsys, "contracts", "add-item", "9999", "--description", "x", "--price", "1.00"
    )
    assert code == 66 and "no contract 9999" in one_line(err)
    code, _, err = billing(
        capsys, "contracts", "add-item", "7002", "--description", "x", "--price", "1,5"
    )
    assert code == 64 and "--price '1,5'" in one_line(err)
    assert (
        billing(capsys, "invoicing", "run", "--period", "2027-03", "--issued-on", "2027-04-01")[0]
        == 0
    )
    march = _fetch(
        env, "SELECT lines FROM invoicing.invoices WHERE contract = '7002' AND period = '2027-03'"
        " AND kind = 'periodic'",
    )[0][0]  # fmt: skip
    assert [x["description"] for x in json.loads(march)] == ["Připojení k internetu", "Router"]

    code, out, _ = billing(capsys, "documents", "undelivered", "--json")
    pending = json.loads(out)
    kinds = {(d["kind"], d["number"]) for d in pending}
    assert ("credit_note", "D2027000002") in kinds and ("invoice", "2027000004") in kinds
    # delivery fills delivered_at; a delivered document is no longer listed
    _fetch(
        env, f"UPDATE invoicing.invoices SET delivered_at = now() WHERE invoice_number = '{number}'"
    )
    code, out, _ = billing(capsys, "documents", "undelivered")
    assert f"{number}  invoice" not in out and "2027000004  invoice" in out


def test_the_supplier_is_refused_naming_the_variable(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BILLING_SUPPLIER_NAME")
    code, _, err = billing(capsys, "invoicing", "run", "--period", "2027-02")
    assert code == 78 and "BILLING_SUPPLIER_NAME" in one_line(err)
    monkeypatch.setenv("BILLING_SUPPLIER_NAME", "Síťař s.r.o.")
    monkeypatch.setenv("BILLING_SUPPLIER_COMPANY_ID", "25596642")  # a wrong check digit
    code, _, err = billing(capsys, "credit-note", "issue", "1", "--all", "--reason", "x")
    assert code == 78
    assert "BILLING_SUPPLIER_COMPANY_ID: '25596642' is not a valid IČO" in one_line(err)
    # the worker refuses to start, the same way
    monkeypatch.setenv("BILLING_TEST_CLOCK", "false")
    monkeypatch.setenv("BILLING_OPERATOR_TOKENS", "dev:" + "t" * 32)
    with pytest.raises(ConfigError, match="BILLING_SUPPLIER_COMPANY_ID"):
        check_startup(SPEC, InvoicingSettings(database_url=env))
    monkeypatch.setenv("BILLING_SUPPLIER_COMPANY_ID", "25596641")
    monkeypatch.setenv("BILLING_SUPPLIER_BANK_ACCOUNT", "SK3511000000002612345674")
    with pytest.raises(ConfigError, match=r"BILLING_SUPPLIER_BANK_ACCOUNT=.* is not BILLING_BANK"):
        check_startup(SPEC, InvoicingSettings(database_url=env))
    monkeypatch.delenv("BILLING_SUPPLIER_BANK_ACCOUNT")
    monkeypatch.delenv("BILLING_SUPPLIER_VAT_ID")
    with pytest.raises(ConfigError, match=r"BILLING_SUPPLIER_VAT_ID: None, expected CZ.*VAT_PAYER"):
        check_startup(SPEC, InvoicingSettings(database_url=env))
    monkeypatch.setenv("BILLING_SUPPLIER_VAT_PAYER", "false")
    check_startup(SPEC, InvoicingSettings(database_url=env))  # not a VAT payer: no VAT id


def test_cancelling_an_invoice_is_a_full_credit_note_never_a_deletion(
    env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    number = _february(env, capsys, tmp_path)
    # part credited first: the cancellation credits the rest
    code, _, _ = billing(
        capsys, "credit-note", "issue", number, "--line", "1=100.00", "--reason", "výpadek",
        "--issued-on", "2027-03-04",
    )  # fmt: skip
    assert code == 0
    code, out, _ = billing(
        capsys, "invoice", "cancel", number, "--reason", "smlouva zrušena", "--operator", "olga",
        "--issued-on", "2027-03-05",
    )  # fmt: skip
    assert code == 0, out
    assert out.strip() == (
        f"invoice {number} cancelled by credit note D2027000002 (1978.50 CZK); it now asks 0.00 CZK"
    )  # 2,099.50 less the 121.00 credited before
    again = ("invoice", "cancel", number, "--reason", "znovu", "--issued-on", "2027-03-06")
    code, _, err = billing(capsys, *again)
    assert code == 65 and "fully credited already" in one_line(err)
    code, _, err = billing(capsys, "invoice", "cancel", "2027999999", "--reason", "x")
    assert code == 66 and "no invoice or credit note 2027999999" in one_line(err)
    code, _, err = billing(capsys, "invoice", "cancel", number)
    assert code == 64 and "--reason" in err

    # the invoice stays, with both notes; the note states the reason and validates
    code, out, _ = billing(capsys, "invoice", "show", number, "--json")
    shown = json.loads(out)
    assert shown["total_minor"] == 209950
    assert shown["credit_notes"] == ["D2027000001", "D2027000002"]
    code, out, _ = billing(capsys, "invoice", "show", "D2027000002")
    assert f"credits invoice {number}: smlouva zrušena" in out
    note = tmp_path / "d.isdoc"
    write = ("invoice", "write", "D2027000002", "--format", "isdoc", "--out", str(note))
    assert billing(capsys, *write)[0] == 0
    isdoc.validate(note.read_bytes())
    # payments and dunning follow the note; the zone learns the invoice is cancelled
    events = [
        (r["event_type"], json.loads(bytes(r["value"]))["data"])
        for r in _fetch(
            env, "SELECT event_type, value FROM invoicing.outbox"
            " WHERE event_type IN ('credit_note.issued.v1', 'invoice.cancelled.v1') ORDER BY id",
        )
    ]  # fmt: skip
    assert [(t, d.get("credit_note_number"), d.get("due_minor")) for t, d in events] == [
        ("credit_note.issued.v1", "D2027000001", 197850),
        ("credit_note.issued.v1", "D2027000002", 0),
        ("invoice.cancelled.v1", None, None),
    ]
    assert events[2][1] == {
        "contract": "7001", "invoice_number": number, "ss": number, "reason": "smlouva zrušena"
    }  # fmt: skip
    trail = _fetch(
        env, "SELECT operator, action, contract, reason FROM invoicing.operator_actions"
        " WHERE action = 'invoice-cancel'",
    )  # fmt: skip
    assert [tuple(r) for r in trail] == [("olga", "invoice-cancel", "7001", "smlouva zrušena")]
