CREATE TABLE contracts (
    contract          text PRIMARY KEY,
    data              jsonb       NOT NULL,   -- the contract.upserted.v1 payload
    active            boolean     NOT NULL,
    monthly_fee_minor bigint      NOT NULL,
    currency          char(3)     NOT NULL,
    due_kind          text        NOT NULL CHECK (due_kind IN ('day_of_month', 'days_after_issue')),
    due_value         integer     NOT NULL,
    updated_at        timestamptz NOT NULL
);

CREATE TABLE invoices (
    invoice_number text PRIMARY KEY,
    contract       text        NOT NULL REFERENCES contracts,
    vs             text        NOT NULL,
    ss             text        NOT NULL UNIQUE,
    period         text        NOT NULL,
    issued_on      date        NOT NULL,
    due_on         date        NOT NULL,
    amount_minor   bigint      NOT NULL CHECK (amount_minor > 0),
    currency       char(3)     NOT NULL,
    created_at     timestamptz NOT NULL,
    status         text        NOT NULL DEFAULT 'issued'
                   CHECK (status IN ('issued', 'partially_paid', 'paid')),
    paid_minor     bigint      NOT NULL DEFAULT 0,
    settled_on     date,
    UNIQUE (contract, period)
);

CREATE TABLE invoice_sequences (
    year integer PRIMARY KEY,
    last integer NOT NULL
);

CREATE TABLE billing_runs (
    id        bigserial PRIMARY KEY,
    period    text        NOT NULL,
    issued_on date        NOT NULL,
    issued    integer     NOT NULL,
    run_at    timestamptz NOT NULL
);
