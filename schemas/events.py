"""Event payloads: the ``data`` of each CloudEvent type.

Money is always an integer amount of minor units plus an ISO 4217 code. The models forbid
unknown fields so a producer's typo is caught at the edge, not three services later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from schemas import contacts as rules
from schemas.accounts import account_problem
from schemas.money import MAX_AMOUNT_MINOR, AmountMinor

Currency = str  # ISO 4217 letters; validated by the pattern on each field
CURRENCY = Field(pattern=r"^[A-Z]{3}$")
SYMBOL = Field(pattern=r"^[1-9][0-9]{0,9}$")


class Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExternalData(Data):
    """The data of an external contract (DESIGN section 3: other people's software writes
    or reads it). Strict: a value of the wrong JSON type is refused, never coerced
    (``"amount_minor": "499.00"``, ``499.0`` or ``true`` is not 499; a date is an ISO
    string, not a number). Built in Python, dates and times are ``date`` / ``datetime``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _checked_account(value: str) -> str:
    problem = account_problem(value)
    if problem is not None:
        raise ValueError(f"expected {problem}")
    return value


# Our account: an IBAN or a Czech / Slovak domestic number must pass its check digits
# (schemas.accounts); other forms (a foreign domestic number) are taken as they are.
OurAccount = Annotated[str, Field(min_length=1), AfterValidator(_checked_account)]


# --- contracts (invoicing) -------------------------------------------------------------


class Contact(Data):
    name: str
    email: str | None = None
    phone: str | None = None
    language: str = "cs"
    categories: list[str] = Field(default_factory=lambda: ["billing", "dunning"])
    owner: bool = False

    # The rules are in schemas/contacts.py; an error names the character or the problem.
    @field_validator("name", "language")
    @classmethod
    def _plain(cls, value: str) -> str:
        return rules.plain_text(value)

    @field_validator("categories")
    @classmethod
    def _plain_each(cls, value: list[str]) -> list[str]:
        return [rules.plain_text(v) for v in value]

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else rules.email_address(value)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else rules.phone_number(value)


class Subscribers(ExternalData):
    """How network gear recognises the customer."""

    ipv4: list[str] = Field(default_factory=list)
    ipv6: list[str] = Field(default_factory=list)
    ipv4_prefixes: list[str] = Field(default_factory=list)
    ipv6_prefixes: list[str] = Field(default_factory=list)
    logins: list[str] = Field(default_factory=list, description="PPPoE / RADIUS logins")
    macs: list[str] = Field(default_factory=list)


class ContractUpserted(Data):
    contract: str = SYMBOL
    customer_name: str
    language: str = "cs"
    country: Literal["CZ", "SK", "HU"] = "CZ"
    currency: Currency = CURRENCY
    monthly_fee_minor: int = Field(ge=0)
    active: bool = True
    exempt: bool = False
    policy: str | None = Field(
        default=None, description="Dunning policy; None: the group's, else the default"
    )
    group: str | None = Field(default=None, description="Contract group (policy by group)")
    contacts: list[Contact] = Field(default_factory=list)
    subscribers: Subscribers = Field(default_factory=Subscribers)
    services: list[ContractService] | None = Field(
        default=None,
        description="What the contract bills, for the customer zone; null: not told (older"
        " producers)",
    )


# --- invoices (invoicing) ---------------------------------------------------------------


class InvoiceLine(Data):
    """One line of an invoice or credit note, as its document states it. Amounts are minor
    units of the document's currency, positive on a credit note too (what it credits)."""

    number: int = Field(ge=1)
    description: str
    quantity: Decimal = Field(gt=0)
    unit: Literal["month", "day", "piece", "hour", "service", "lump"]
    unit_price_minor: int = Field(ge=0, description="Without VAT")
    vat_category: Literal["standard", "reduced", "reduced2", "zero", "outside"]
    vat_rate: Decimal | None = Field(description="Percent; null: no VAT charged on the line")
    base_minor: int = Field(ge=0)
    vat_minor: int = Field(ge=0)
    period_start: date | None = Field(default=None, description="A service's billed days")
    period_end: date | None = None
    share: str | None = Field(
        default=None,
        pattern=r"^[0-9]+/[0-9]+$",
        description="Days billed / days of the period, when prorated (17/31)",
    )
    original_line: int | None = Field(default=None, description="Credit note: the line it credits")


class VatRow(Data):
    """One row of the VAT recapitulation: the base and the VAT of one rate."""

    vat_rate: Decimal | None = Field(description="Percent; null: no VAT charged")
    base_minor: int = Field(ge=0)
    vat_minor: int = Field(ge=0)


class InvoiceIssued(Data):
    contract: str = SYMBOL
    invoice_number: str
    vs: str = SYMBOL
    ss: str = SYMBOL
    period: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}$")
    issued_on: date
    due_on: date
    amount_minor: int = Field(gt=0)
    currency: Currency = CURRENCY
    account: str = Field(description="Our account the customer pays to.")
    # Added with documents (issue 29); absent from earlier events. Null on an invoice
    # issued without a document (a currency or VAT treatment not supported yet).
    tax_point_on: date | None = Field(default=None, description="Date of the taxable supply")
    lines: list[InvoiceLine] | None = Field(
        default=None, description="The invoice's lines; they add up to amount_minor"
    )
    vat: list[VatRow] | None = Field(default=None, description="The VAT recapitulation")
    # Added with top-ups in the zone (issues 30/31); absent from earlier events (null: not
    # said, dunned as any invoice). "topup": a VoIP credit top-up's invoice, never dunned
    # (unpaid, the customer only does not get the credit).
    kind: Literal["periodic", "one_off", "topup"] | None = Field(
        default=None, description="periodic (a billing run's), one_off or topup (VoIP credit)"
    )


class CreditNoteIssued(Data):
    """A credit note (opravný daňový doklad, opravná faktúra, helyesbítő számla): part or
    all of one invoice credited. Its lines credit the invoice's (``original_line``), in
    positive amounts; ``due_minor`` is what the invoice asks for after every credit note
    it has, this one included."""

    contract: str = SYMBOL
    credit_note_number: str
    invoice_number: str = Field(description="The invoice it credits")
    ss: str = Field(pattern=r"^[1-9][0-9]{0,9}$", description="The invoice's SS")
    issued_on: date
    reason: str = Field(min_length=1)
    lines: list[InvoiceLine]
    vat: list[VatRow]
    amount_minor: int = Field(gt=0, description="Credited by this note, VAT included")
    currency: Currency = CURRENCY
    invoice_amount_minor: int = Field(gt=0, description="The invoice's total as issued")
    credited_minor: int = Field(gt=0, description="Credited by all its notes, this included")
    due_minor: int = Field(ge=0, description="The invoice's total less all credited")


def _from_base64(value: object) -> object:
    """JSON carries the bytes as base64 text; Python passes the bytes themselves."""
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as e:
            raise ValueError(f"expected base64: {e}") from None
    return value


# Bytes in Python, base64 text in JSON (the e-mail attachments of a document).
Base64Content = Annotated[
    bytes,
    BeforeValidator(_from_base64),
    PlainSerializer(lambda b: base64.b64encode(b).decode(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]


class Attachment(Data):
    """A file attached to a document's e-mail: its bytes (base64 in JSON) and their SHA-256,
    which the model checks, so a corrupted or truncated attachment is refused at the edge."""

    filename: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    media_type: Literal["application/pdf", "application/xml"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content: Base64Content

    @model_validator(mode="after")
    def _hash_matches(self) -> Attachment:
        actual = hashlib.sha256(self.content).hexdigest()
        if actual != self.sha256:
            raise ValueError(f"{self.filename}: sha256 {actual} of the content, not {self.sha256}")
        return self


class DocumentReady(Data):
    """An invoice or credit note made into its PDF and ISDOC and archived with their
    hashes, for notify to e-mail to the contract's billing contacts once. ``number`` is
    notify's request id; its ``notification.sent`` (kind ``invoice`` / ``credit_note``)
    tells invoicing the document was delivered."""

    contract: str = SYMBOL
    kind: Literal["invoice", "credit_note"]
    number: str = Field(min_length=1)
    issued_on: date
    amount_minor: int = Field(gt=0, description="The document's total, VAT included")
    currency: Currency = CURRENCY
    due_on: date | None = Field(default=None, description="An invoice's due date")
    attachments: list[Attachment] = Field(min_length=1)


class InvoiceCancelled(Data):
    contract: str = SYMBOL
    invoice_number: str
    ss: str = SYMBOL
    reason: str


# --- payments (bank importers, external contract) ---------------------------------------


class PaymentReceived(ExternalData):
    """External contract: bank statement importers (ours and third parties') publish this.

    Exactly these fields; change only with a new version. Validation may only tighten:
    strict types, amounts within ``schemas.money.MAX_AMOUNT_MINOR``, our account's check
    digits. The counterparty's account is taken as the bank printed it (the money came)."""

    account: OurAccount = Field(description="Our account: IBAN or prefix-number/bank")
    bank_tx_id: str = Field(min_length=1, description="Bank's id of the movement, per account")
    booked_on: date
    value_on: date
    amount_minor: AmountMinor = Field(description="Signed minor units; credit > 0")
    currency: Currency = CURRENCY
    vs: str | None = Field(default=None, pattern=r"^[1-9][0-9]{0,9}$")
    ss: str | None = Field(default=None, pattern=r"^[1-9][0-9]{0,9}$")
    ks: str | None = Field(default=None, pattern=r"^[0-9]{4}$")
    counterparty_account: str | None = None
    counterparty_name: str | None = None
    message: str | None = None


# --- payment outcomes (payments) --------------------------------------------------------


class Allocation(Data):
    invoice_number: str
    ss: str
    amount_minor: int
    rule: str = Field(description="Which pairing rule chose this invoice, e.g. 'ss', 'vs-oldest'")


class PaymentMatched(Data):
    contract: str
    account: str
    bank_tx_id: str
    booked_on: date
    amount_minor: int
    currency: Currency = CURRENCY
    allocations: list[Allocation]
    credit_minor: int = Field(ge=0, description="What was left over and kept as credit")
    credit_balance_minor: int = Field(ge=0)
    rule: str


UnmatchedReason = Literal[
    "debit",
    "no-symbols",
    "unknown-contract",
    "currency-mismatch",
    "invalid-amount",
    "unknown-invoice",
    "phone-number-vs",
    "ambiguous-message",
    "credit-limit",
]


class PaymentUnmatched(Data):
    account: str
    bank_tx_id: str
    booked_on: date
    amount_minor: int
    currency: Currency = CURRENCY
    vs: str | None
    ss: str | None
    reason_code: UnmatchedReason
    reason: str


class InvoiceSettled(Data):
    contract: str
    invoice_number: str
    ss: str
    amount_minor: int
    paid_minor: int
    currency: Currency = CURRENCY
    settled_on: date
    within_tolerance_minor: int = Field(
        ge=0, description="Underpayment forgiven by the rounding tolerance"
    )
    paid_at: AwareDatetime | None = Field(
        default=None,
        description="The time of the payments.received event whose payment settled it (none:"
        " credit, a credit note or an operator): the start of the reconnect time",
    )


class InvoicePartiallyPaid(Data):
    contract: str
    invoice_number: str
    ss: str
    amount_minor: int
    paid_minor: int
    remaining_minor: int = Field(gt=0)
    currency: Currency = CURRENCY


class InvoiceReopened(Data):
    """A settled or partly paid invoice owes more again (its payment was reversed)."""

    contract: str
    invoice_number: str
    ss: str
    amount_minor: int
    paid_minor: int = Field(ge=0)
    remaining_minor: int = Field(gt=0)
    currency: Currency = CURRENCY
    reason: str


class PaymentReversed(Data):
    """The bank took a payment back; what it had paid is open again."""

    contract: str | None = Field(description="Null when the payment had never been matched")
    account: str
    bank_tx_id: str = Field(description="The reversed payment")
    reversal_bank_tx_id: str = Field(description="The bank's debit that reversed it")
    booked_on: date
    amount_minor: int = Field(gt=0)
    currency: Currency = CURRENCY
    reopened: list[Allocation] = Field(
        description="What is taken back from each invoice the payment (or its credit) paid"
    )
    credit_removed_minor: int = Field(ge=0)
    credit_balance_minor: int = Field(ge=0)


# --- dunning ------------------------------------------------------------------------------


class OverdueInvoice(Data):
    invoice_number: str
    vs: str
    ss: str
    due_on: date
    open_minor: int
    currency: Currency = CURRENCY


class DunningRequest(Data):
    """Common shape of every dunning action: who, why, which step, and what is owed."""

    contract: str
    request_id: str = Field(description="Unique per contract, reason and step: the dedupe key")
    step: str
    policy: str
    overdue_minor: int
    currency: Currency = CURRENCY
    invoices: list[OverdueInvoice]
    account: str
    decided_at: AwareDatetime


class ReminderRequested(DunningRequest):
    channels: list[Literal["email", "sms"]] = Field(default=["email"])


class NoticeRequested(DunningRequest):
    promise_max_days: int = Field(
        default=0, ge=0, description="How far the customer may postpone; 0: no promise"
    )


class RestrictRequested(DunningRequest):
    pass


class FeeCharged(Data):
    """A late fee, charged once per late invoice, to be billed on the next invoice."""

    contract: str
    request_id: str
    invoice_number: str = Field(description="The late invoice")
    amount_minor: int = Field(gt=0)
    currency: Currency = CURRENCY
    step: str
    policy: str


class PromiseMade(Data):
    """The customer promised to pay (from the notice page) or an operator postponed."""

    contract: str
    days: int | None = Field(
        default=None, ge=1, le=60, description="Customer: postpone the suspension by this many days"
    )
    until: AwareDatetime | None = Field(default=None, description="Operator: postpone until then")
    by: Literal["customer", "operator"]
    reason: str = ""
    address: str | None = None
    user_agent: str | None = None
    made_at: AwareDatetime


class SuspendRequested(DunningRequest):
    acknowledged_at: AwareDatetime | None = None


class RestoreRequested(Data):
    contract: str
    request_id: str
    reason: str
    decided_at: AwareDatetime
    paid_at: AwareDatetime | None = Field(
        default=None,
        description="When the payment that settled the debt arrived (invoice.settled's"
        " paid_at), for billing_reconnect_seconds",
    )


# --- provisioning -------------------------------------------------------------------------


class NoticeAcknowledged(Data):
    contract: str
    acknowledged_at: AwareDatetime
    address: str
    user_agent: str | None


AccessState = Literal["active", "notice", "restricted", "suspended"]


class NetworkAccess(ExternalData):
    """External contract: read by network gear. Level-triggered full state per contract."""

    contract: str
    subscribers: Subscribers
    state: AccessState
    reason: str
    version: int = Field(ge=1, description="Grows with every change of this contract")
    effective_at: AwareDatetime


class GearApplied(ExternalData):
    """Network gear reports the access state it has put in place (for the drift view)."""

    gear: str = Field(min_length=1, description="Which gear: a gateway's name")
    contract: str
    version: int = Field(ge=1)
    state: AccessState
    applied_at: AwareDatetime


# --- notify -------------------------------------------------------------------------------


class NotificationSent(Data):
    contract: str
    request_id: str
    kind: str
    channel: Literal["email", "sms"]
    recipient: str
    attempts: int


class NotificationFailed(Data):
    contract: str
    request_id: str
    kind: str
    channel: Literal["email", "sms"]
    recipient: str
    attempts: int
    error: str


# --- VoIP credit top-ups (invoicing, issue 29 item 6; usage adds the credit, issue 31) ----

# Chosen by the requester (the zone: a UUID per click) so that a request sent twice is one
# request: invoicing keeps one outcome per contract and request id.
TopupRequestId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")]
CouponCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")]
TopupRefusalCode = Literal[
    "over_cap",  # the month's self-service top-ups and this one would pass the cap
    "unknown_contract",
    "inactive_contract",
    "unknown_coupon",  # no such code on the operator's coupon list
    "amount_not_offered",  # a customer's amount that no coupon of the currency has
    "wrong_currency",  # not the currency the contract is billed in
    "cannot_invoice",  # the contract's invoice cannot be made (the reason says why)
]


class TopupRequested(Data):
    """A request for VoIP credit: a coupon of the operator's list, or an amount in the
    contract's currency. Invoicing answers each request id once: ``topup.invoiced`` (the
    invoice to pay) or ``topup.refused`` (why)."""

    contract: str = SYMBOL
    request_id: TopupRequestId
    coupon: CouponCode | None = None
    amount_minor: int | None = Field(default=None, gt=0, le=MAX_AMOUNT_MINOR)
    currency: Currency | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    requested_by: Literal["customer", "operator"] = Field(
        description="customer: self-service (the zone), under the monthly cap; operator: not"
    )
    who: str = Field(
        min_length=1, max_length=200, description="The zone person's id, or the operator"
    )
    requested_at: AwareDatetime

    @field_validator("who")
    @classmethod
    def _plain_who(cls, value: str) -> str:
        return rules.plain_text(value)

    @model_validator(mode="after")
    def _coupon_or_amount(self) -> TopupRequested:
        amount = (self.amount_minor, self.currency)
        if self.coupon is not None and amount != (None, None):
            raise ValueError("a coupon or amount_minor with currency, not both")
        if self.coupon is None and None in amount:
            raise ValueError("a coupon, or amount_minor with currency")
        return self


class TopupInvoiced(Data):
    """A top-up request granted: its invoice (also published as ``invoice.issued``) and
    what is left of the contract's monthly cap."""

    contract: str = SYMBOL
    request_id: TopupRequestId
    invoice_number: str
    vs: str = SYMBOL
    ss: str = SYMBOL
    amount_minor: int = Field(gt=0, description="The invoice's total: the credit once paid")
    currency: Currency = CURRENCY
    coupon: CouponCode | None = None
    issued_on: date
    due_on: date
    account: str = Field(description="Our account the customer pays to.")
    month: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}$", description="The cap's month")
    cap_minor: int | None = Field(ge=0, description="Null: an operator's, not capped")
    left_minor: int | None = Field(ge=0, description="Self-service top-ups left this month")


class TopupRefused(Data):
    """A top-up request refused: a machine code and a sentence for people."""

    contract: str = SYMBOL
    request_id: TopupRequestId
    reason_code: TopupRefusalCode
    reason: str = Field(min_length=1)
    coupon: CouponCode | None = None
    amount_minor: int | None = Field(default=None, gt=0)
    currency: Currency | None = None
    month: str | None = Field(default=None, pattern=r"^[0-9]{4}-[0-9]{2}$")
    cap_minor: int | None = Field(default=None, ge=0)
    left_minor: int | None = Field(default=None, ge=0, description="over_cap: what is left")


class VoipCreditPurchased(Data):
    """A top-up invoice fully paid: add this much VoIP credit. Once per invoice."""

    contract: str = SYMBOL
    request_id: TopupRequestId
    invoice_number: str
    amount_minor: int = Field(gt=0, description="The credit to add, in the invoice's currency")
    currency: Currency = CURRENCY
    paid_on: date = Field(description="The day payments settled the invoice")


class UpcomingStep(Data):
    action: str = Field(description="reminder, notice, suspend, restrict")
    step: str = Field(description="The policy's step")
    at: AwareDatetime


class DunningStatus(Data):
    """A contract's dunning situation, published whenever it changes (a reminder, notice,
    restriction, suspension, promise, fee, restore, a payment or credit note that ends
    it): its stage, why (the overdue invoices, how much, since when), what happens next
    and when, and what to pay to end it (each invoice's open amount, VS and SS, to
    ``account``). Built by the function that ``billing dunning explain`` prints
    (services/dunning/domain.py ``explain``); the customer zone shows it."""

    contract: str
    stage: Literal["active", "notice", "restricted", "suspended"]
    policy: str
    exempt: bool
    overdue_since: date | None = Field(description="Due date of the oldest overdue invoice")
    overdue_minor: int = Field(ge=0, description="What ends it: the overdue invoices' sum")
    currency: Currency | None = Field(pattern=r"^[A-Z]{3}$")
    invoices: list[OverdueInvoice] = Field(description="The overdue invoices, oldest first")
    steps_reached: list[UpcomingStep] = Field(
        description="Escalation steps due by now (``at``: when each fell due)"
    )
    upcoming: list[UpcomingStep] = Field(description="What happens next and when, soonest first")
    held: str | None = Field(default=None, description="Why the next step waits (operator text)")
    promised_until: AwareDatetime | None = None
    acknowledged_at: AwareDatetime | None = None
    account: str = Field(description="Our account to pay to, in the currency")
    decided_at: AwareDatetime


class ContractService(Data):
    """One recurring service of a contract as the customer sees it: what, since and until
    when it is billed (device insurance "billed until" a date), its price per period."""

    kind: Literal["tariff", "voip", "insurance", "static_ip", "other"]
    description: str = Field(min_length=1, max_length=300)
    unit_price_minor: int = Field(ge=0, description="For one unit and one whole period")
    quantity: Decimal = Field(default=Decimal(1), gt=0)
    every: Literal["month", "quarter", "year"] = "month"
    starts_on: date | None = None
    ends_on: date | None = Field(default=None, description="The last day billed")
    prepaid: bool = Field(
        default=False,
        description="voip: calls are paid from prepaid credit (top-ups), not invoiced",
    )


# ContractUpserted names ContractService, defined after it (appended: see above).
ContractUpserted.model_rebuild()


# --- the customer zone (zone) ---------------------------------------------------------------


class ContactChangeRequested(Data):
    """A person of the customer asks, in the zone, to add, change or remove one of the
    contract's contacts. The zone owns no contract data: invoicing applies the change to
    the contract's contacts, audits it and publishes contract.upserted again (notify and
    the zone follow). ``before`` is the contact as the zone showed it: invoicing changes or
    removes the contact equal to it, and refuses the request (audited) when none is, so a
    change made meanwhile by another is never overwritten unseen."""

    contract: str = SYMBOL
    request_id: str = Field(min_length=1, max_length=64, description="Unique per request")
    action: Literal["add", "change", "remove"]
    before: Contact | None = Field(default=None, description="change, remove: as shown")
    after: Contact | None = Field(default=None, description="add, change: as it shall be")
    requested_by: str = Field(min_length=1, description="The zone person's e-mail")
    requested_at: AwareDatetime

    @model_validator(mode="after")
    def _what_each_action_needs(self) -> ContactChangeRequested:
        needs = {"add": (False, True), "change": (True, True), "remove": (True, False)}
        before, after = needs[self.action]
        if (self.before is not None) != before or (self.after is not None) != after:
            raise ValueError(
                f"{self.action}: expected {'a' if before else 'no'} before and "
                f"{'an' if after else 'no'} after"
            )
        return self


class SupportRequested(Data):
    """A support request sent from the zone by a logged-in person with the right to: for
    a ticket system. The zone also e-mails it to the operator's support address and
    acknowledges it to the sender."""

    contract: str = SYMBOL
    request_id: str = Field(min_length=1, max_length=64, description="Unique per request")
    subject: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=10000)
    about: str | None = Field(
        default=None, description="The service or contract the request is about"
    )
    customer_name: str
    sender_email: str
    sender_name: str | None = None
    sent_at: AwareDatetime


class StatementImported(ExternalData):
    """A bank statement (or a Fio fetch) imported for one of our accounts, with movements
    or none, published on payments.received after its movements by importers (ours and
    third parties'): payments keeps the time per account, the operators' alert on an
    overdue import (billing_bank_statement_last_import_timestamp_seconds)."""

    account: OurAccount = Field(description="Our account the statement is of")
    imported_at: AwareDatetime = Field(description="When the importer imported it")
    movements: int = Field(ge=0, description="How many movements of the account it held")
    file: str | None = Field(default=None, description="The statement's file name, if any")


# --- usage: traffic (gear -> traffic -> zone) ------------------------------------------------
#
# Traffic and VoIP are two services (services/traffic, services/voip), not one "usage":
# docs/usage.md says why. Gear reports cumulative counters; the traffic service turns them
# into per-address buckets (5 minutes, hours, days) and publishes closed hours per contract.


class AddressCounter(ExternalData):
    """One address's cumulative byte counters as the gear reads them (since the counter
    was created or the gear restarted: ``boot_id`` says which)."""

    address: str = Field(
        min_length=2, max_length=64, description="An IPv4 or IPv6 address or prefix"
    )
    contract: str | None = Field(
        default=None,
        pattern=r"^[1-9][0-9]{0,9}$",
        description="The contract the gear applied this address for; null: the traffic "
        "service attributes it from contract.upserted subscribers",
    )
    rx_bytes: int = Field(ge=0, description="To the customer (download), cumulative")
    tx_bytes: int = Field(ge=0, description="From the customer (upload), cumulative")


class TrafficCounters(ExternalData):
    """A gear's counter report (external contract: nftables gear, MikroTik accounting or a
    NetFlow/IPFIX collector publish the same). Keyed by ``gear``, not by contract: one
    gear's reports must stay in order. A report of many addresses comes in ``parts``
    (at most 5,000 counters each) sharing ``report_id``."""

    gear: str = Field(min_length=1, max_length=100, description="Which gear: a gateway's name")
    boot_id: str = Field(
        min_length=1,
        max_length=100,
        description="Changes when the gear's counters restart from zero (gear restart, "
        "ruleset reload)",
    )
    report_id: str = Field(min_length=1, max_length=100)
    part: int = Field(ge=1)
    parts: int = Field(ge=1)
    collected_at: AwareDatetime = Field(description="When the gear read the counters")
    counters: list[AddressCounter] = Field(max_length=5000)

    @model_validator(mode="after")
    def _part_of_parts(self) -> TrafficCounters:
        if self.part > self.parts:
            raise ValueError(f"part {self.part} of {self.parts}")
        return self


class AddressTraffic(Data):
    address: str
    rx_bytes: int = Field(ge=0)
    tx_bytes: int = Field(ge=0)


class TrafficHour(Data):
    """One contract's traffic in one closed hour, per address (bytes, not cumulative). The
    zone keeps these as its read model of traffic. Published again, whole, if a late report
    changes a closed hour: the newest event for (contract, hour) wins."""

    contract: str = SYMBOL
    hour: AwareDatetime = Field(description="The hour's start (UTC)")
    addresses: list[AddressTraffic]
    revision: int = Field(ge=1, description="Higher replaces lower for the same hour")


# --- usage: VoIP (voip: CDRs, rating, prepaid credit) ------------------------------------


class RatedCall(Data):
    call_id: str = Field(
        min_length=1, max_length=200, description="The CDR's unique id (Asterisk uniqueid)"
    )
    started_at: AwareDatetime
    seconds: int = Field(ge=0, description="Billed duration (Asterisk billsec)")
    caller: str = Field(max_length=64, description="The customer's number (src)")
    number: str = Field(min_length=1, max_length=64, description="The number called (dst)")
    destination: str = Field(description="The price list's name of the matched prefix")
    prefix: str = Field(description="The longest matched prefix of the price list")
    price_minor: int = Field(ge=0, description="The call's price without VAT, rounded per call")
    currency: Currency = CURRENCY
    prepaid: bool = Field(description="Deducted from prepaid credit (true) or invoiced (false)")


class CallsRated(Data):
    """Calls of one contract rated from one CDR import (at most 1,000 per event: an import
    of many calls for a contract comes in several). Invoicing bills postpaid ones as lines
    of the next periodic invoice; the zone lists them. Each call id once per contract: a
    consumer ignores a call id it has."""

    contract: str = SYMBOL
    import_id: str = Field(min_length=1, description="The CDR file's import (its hash)")
    calls: list[RatedCall] = Field(min_length=1, max_length=1000)


class VoipCreditBalance(Data):
    """A prepaid VoIP account's balance after a change (a paid top-up, a batch of calls)."""

    contract: str = SYMBOL
    balance_minor: int = Field(description="May go below zero: a call longer than the credit")
    currency: Currency = CURRENCY
    change_minor: int = Field(description="This change: a top-up > 0, calls < 0")
    reason: Literal["topup", "calls", "adjustment"]
    at: AwareDatetime


class VoipCreditLow(Data):
    """The balance fell below the operator's threshold (published once per crossing: again
    only after a top-up raised it above). For notify (tell the customer)."""

    contract: str = SYMBOL
    balance_minor: int
    threshold_minor: int = Field(ge=0)
    currency: Currency = CURRENCY
    at: AwareDatetime


class VoipCreditExhausted(Data):
    """The balance reached zero or less: the PBX blocks outgoing paid calls until
    ``voip.credit_balance`` shows it above zero again; notify tells the customer. Once per
    exhaustion."""

    contract: str = SYMBOL
    balance_minor: int
    currency: Currency = CURRENCY
    at: AwareDatetime
