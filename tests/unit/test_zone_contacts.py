"""The pure decisions behind contacts and support in the zone (issue 30): how the zone's
categories map to notify's, what a contact form may hold and how each problem is named,
what a support request may hold, and how invoicing applies a customer's change."""

from __future__ import annotations

import pytest

from schemas.events import Contact, ContactChangeRequested
from services.invoicing import domain as invoicing
from services.zone import domain
from services.zone.domain import ContactForm, SupportForm


@pytest.mark.parametrize(
    ("stored", "checked", "expected"),
    [
        ([], ["invoices"], ["billing", "dunning"]),
        (["billing", "dunning"], [], []),
        # shown as it was: a contact with only "billing" does not gain "dunning"
        (["billing"], ["invoices"], ["billing"]),
        (["billing"], ["invoices", "access"], ["billing", "access"]),
        # categories the zone does not show stay
        (["billing", "sms-only"], [], ["sms-only"]),
        (["technical"], ["technical", "support"], ["technical", "support"]),
    ],
)
def test_zone_categories_map_to_notifys(
    stored: list[str], checked: list[str], expected: list[str]
) -> None:
    assert domain.stored_categories(stored, checked) == expected


def test_shown_categories() -> None:
    assert domain.shown_categories(["dunning"]) == ("invoices",)
    assert domain.shown_categories(["access", "support", "x"]) == ("access", "support")
    with pytest.raises(domain.ContactProblem, match="categories"):
        domain.stored_categories([], ["root"])


def test_a_contact_form_names_each_problem_by_field() -> None:
    bad = ContactForm("", "not an address", "12", "xx", ("invoices", "nope"))
    contact, problems = domain.contact_from_form(bad, None)
    assert contact is None
    assert {f: k for f, (k, _) in problems.items()} == {
        "name": "need_name",
        "email": "bad_email",
        "phone": "bad_phone",
        "language": "bad_language",
        "categories": "bad_category",
    }
    _, problems = domain.contact_from_form(ContactForm("Eva", "", "", "cs"), None)
    assert problems == {"email": ("need_address", "")}
    _, problems = domain.contact_from_form(ContactForm("Eva\u202e", "e@x.cz", "", "cs"), None)
    assert problems["name"][0] == "bad_name" and "U+202E" in problems["name"][1]
    _, problems = domain.contact_from_form(
        ContactForm("E", "a@x.cz\r\nBcc: b@x.cz", "", "cs"), None
    )
    assert problems["email"][0] == "bad_email" and "CR" in problems["email"][1]


def test_a_contact_keeps_its_owner_flag_and_what_it_was_not_shown() -> None:
    before = Contact(name="Alena", email="alena@x.cz", categories=["billing"], owner=True)
    form = ContactForm("Alena S.", "alena@x.cz", "602 000 001", "en", ("invoices",))
    after, problems = domain.contact_from_form(form, before)
    assert problems == {} and after is not None
    assert (after.owner, after.phone, after.categories) == (True, "+420602000001", ["billing"])
    own, _ = domain.contact_from_form(form, before, keep_categories=True)
    assert own is not None and own.categories == ["billing"]
    added, _ = domain.contact_from_form(form, None)
    assert added is not None and not added.owner


def test_support_request_rules() -> None:
    ok = SupportForm("Nejde internet", "Od rána.\r\nRouter\tbliká.", "1001", "")
    assert domain.support_problems(ok, "1001") == {}
    bad = SupportForm("a\nb", "", "1002", "x" * 201)
    assert {f: k for f, (k, _) in domain.support_problems(bad, "1001").items()} == {
        "subject": "bad_subject",
        "text": "need_text",
        "service": "bad_service",
        "about": "bad_about",
    }
    hidden = SupportForm("s", "text \u202e reversed", "", "")
    assert domain.support_problems(hidden, "1001")["text"][0] == "bad_text"


OWNER = Contact(name="Alena", email="alena@x.cz", categories=[], owner=True)
UCTO = Contact(name="Účetní", email="Ucto@x.cz", categories=["billing", "dunning"])


def test_invoicing_applies_a_change_to_the_contact_as_shown() -> None:
    shown = UCTO.model_copy(update={"email": "ucto@x.cz"})  # the zone keeps lower case
    new = Contact(name="Účetní", email="nova@x.cz", categories=["billing"], owner=True)
    out = invoicing.changed_contacts([OWNER, UCTO], "change", shown, new)
    assert out[1].email == "nova@x.cz" and not out[1].owner  # the zone makes no owner
    assert invoicing.changed_contacts([OWNER, UCTO], "remove", shown, None) == [OWNER]
    added = invoicing.changed_contacts([OWNER], "add", None, new)
    assert added[1].email == "nova@x.cz" and not added[1].owner


@pytest.mark.parametrize(
    ("action", "before", "after", "why"),
    [
        ("change", Contact(name="Účetní", email="old@x.cz"), UCTO, "changed meanwhile"),
        ("remove", OWNER, None, "owner contact cannot be removed"),
        ("add", None, UCTO, "on record already"),
    ],
)
def test_invoicing_refuses_what_it_cannot_apply(
    action: str, before: Contact | None, after: Contact | None, why: str
) -> None:
    with pytest.raises(invoicing.ContactChangeRefused, match=why):
        invoicing.changed_contacts([OWNER, UCTO], action, before, after)  # type: ignore[arg-type]


def test_the_change_event_carries_what_its_action_needs() -> None:
    common = {"contract": "1001", "request_id": "r", "requested_by": "a@x.cz",
              "requested_at": "2026-12-20T09:00:00Z"}  # fmt: skip
    with pytest.raises(ValueError, match="remove: expected a before and no after"):
        ContactChangeRequested.model_validate({**common, "action": "remove", "after": UCTO})
    with pytest.raises(ValueError, match="add: expected no before and an after"):
        ContactChangeRequested.model_validate({**common, "action": "add"})
