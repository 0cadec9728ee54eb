-- Read model of contracts and invoices (from invoicing's events), and what payments owns:
-- bank transactions, allocations and credit balances.

CREATE TABLE contracts (
    contract text PRIMARY KEY,
    currency char(3) NOT NULL
);

CREATE TABLE invoices (
    invoice_number text PRIMARY KEY,
    contract       text    NOT NULL,
    ss             text    NOT NULL UNIQUE,
    due_on         date    NOT NULL,
    amount_minor   bigint  NOT NULL,
    paid_minor     bigint  NOT NULL DEFAULT 0,
    currency       char(3) NOT NULL,
    settled        boolean NOT NULL DEFAULT false,
    forgiven_minor bigint  NOT NULL DEFAULT 0
);
CREATE INDEX invoices_open ON invoices (contract, due_on) WHERE NOT settled;

CREATE TABLE bank_transactions (
    account      text        NOT NULL,
    bank_tx_id   text        NOT NULL,
    event_id     uuid        NOT NULL,
    booked_on    date        NOT NULL,
    amount_minor bigint      NOT NULL,
    currency     char(3)     NOT NULL,
    vs           text,
    ss           text,
    data         jsonb       NOT NULL,
    contract     text,
    status       text        NOT NULL CHECK (status IN ('matched', 'unmatched')),
    reason_code  text,
    reason       text,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (account, bank_tx_id)
);
CREATE INDEX bank_transactions_unmatched ON bank_transactions (received_at)
    WHERE status = 'unmatched';

CREATE TABLE allocations (
    id             bigserial PRIMARY KEY,
    account        text    NOT NULL,
    bank_tx_id     text    NOT NULL,
    invoice_number text    NOT NULL,
    amount_minor   bigint  NOT NULL,
    rule           text    NOT NULL,
    FOREIGN KEY (account, bank_tx_id) REFERENCES bank_transactions
);

CREATE TABLE credits (
    contract      text PRIMARY KEY,
    balance_minor bigint NOT NULL DEFAULT 0 CHECK (balance_minor >= 0)
);
