CREATE TABLE contracts (
    contract text    PRIMARY KEY,
    country  char(2) NOT NULL,
    currency char(3) NOT NULL,
    policy   text    NOT NULL,
    exempt   boolean NOT NULL DEFAULT false
);

-- Facts about invoices, from invoicing (issued) and payments (settled / partially paid).
-- Events of the two services can arrive in either order: a settlement seen first leaves a
-- row without due date that the issue event completes.
CREATE TABLE invoices (
    invoice_number text PRIMARY KEY,
    contract       text    NOT NULL,
    vs             text,
    ss             text,
    due_on         date,
    amount_minor   bigint,
    open_minor     bigint,
    currency       char(3),
    settled        boolean NOT NULL DEFAULT false
);
CREATE INDEX invoices_contract ON invoices (contract) WHERE NOT settled;

CREATE TABLE state (
    contract        text        PRIMARY KEY,
    stage           text        NOT NULL CHECK (stage IN ('active', 'notice', 'suspended')),
    episode         text,
    acknowledged_at timestamptz,
    why             text        NOT NULL DEFAULT '',
    next_check_at   timestamptz,
    updated_at      timestamptz NOT NULL
);

-- Every action requested (or skipped), once: the primary key is the guarantee.
CREATE TABLE actions (
    contract   text        NOT NULL,
    request_id text        NOT NULL,
    kind       text        NOT NULL,
    step       text        NOT NULL,
    decided_at timestamptz NOT NULL,
    PRIMARY KEY (contract, request_id)
);
