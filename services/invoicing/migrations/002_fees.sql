-- Late fees dunning charged (fee.charged.v1): billed once, on the contract's next invoice.
CREATE TABLE pending_fees (
    contract       text        NOT NULL,
    request_id     text        NOT NULL,
    late_invoice   text        NOT NULL,
    amount_minor   bigint      NOT NULL CHECK (amount_minor > 0),
    currency       char(3)     NOT NULL,
    charged_at     timestamptz NOT NULL,
    billed_on      text,       -- the invoice that carries it
    PRIMARY KEY (contract, request_id)
);
ALTER TABLE invoices ADD COLUMN fees_minor bigint NOT NULL DEFAULT 0;
