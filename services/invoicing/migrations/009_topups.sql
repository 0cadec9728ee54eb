-- VoIP credit top-ups (issue 29 item 6): an invoice per granted request, under a monthly
-- cap of the contract's self-service top-ups (services/invoicing/topups.py).

-- A top-up's invoice is an invoice of its own kind: numbered in the year's series, paired
-- by payments as any invoice, not counted as the month's periodic one.
ALTER TABLE invoices DROP CONSTRAINT invoices_kind_check;
ALTER TABLE invoices ADD CONSTRAINT invoices_kind_check
    CHECK (kind IN ('periodic', 'one_off', 'topup'));

-- One row per contract that has asked for a top-up or had its cap set: its lock is what
-- makes the cap check and the invoice one step (two requests at once take it in turn).
-- cap_minor NULL: the default of the contract's currency (BILLING_TOPUP_CAP_MINOR).
CREATE TABLE topup_caps (
    contract  text PRIMARY KEY,
    cap_minor bigint CHECK (cap_minor >= 0),
    set_at    timestamptz,
    set_by    text
);

-- Every request's one outcome, by the id its requester chose: the same id again is
-- answered by this row, never by a second invoice.
CREATE TABLE topup_requests (
    contract       text        NOT NULL,
    request_id     text        NOT NULL,
    requested_by   text        NOT NULL CHECK (requested_by IN ('customer', 'operator')),
    who            text        NOT NULL,
    coupon         text,
    amount_minor   bigint      CHECK (amount_minor > 0),  -- asked, or the coupon's
    currency       char(3),
    month          text        NOT NULL,  -- the operator's calendar month of the decision
    decided_at     timestamptz NOT NULL,
    invoice_number text        UNIQUE REFERENCES invoices,  -- NULL: refused
    reason_code    text,
    reason         text,
    paid_on        date,  -- voip_credit.purchased published (once) for a paid invoice
    credit_minor   bigint,
    PRIMARY KEY (contract, request_id),
    CHECK ((invoice_number IS NULL) <> (reason_code IS NULL))
);
-- What a cap counts: a contract's self-service top-ups invoiced in a month.
CREATE INDEX topup_requests_month ON topup_requests (contract, month)
    WHERE invoice_number IS NOT NULL AND requested_by = 'customer';
