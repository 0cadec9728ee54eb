-- What voip knows of each contract (contract.upserted): the currency it bills in and
-- whether its voip service is prepaid.
CREATE TABLE contracts (
    contract   text    PRIMARY KEY,
    currency   char(3) NOT NULL,
    prepaid    boolean NOT NULL DEFAULT false
);

-- One row per CDR file imported, keyed by the SHA-256 of its bytes: the same file twice
-- finds its row and changes nothing.
CREATE TABLE imports (
    import_id   text        PRIMARY KEY,
    file        text        NOT NULL,
    format      text        NOT NULL,
    lines       integer     NOT NULL,
    rated       integer     NOT NULL,
    already     integer     NOT NULL,
    skipped     integer     NOT NULL,
    refused     integer     NOT NULL,
    imported_at timestamptz NOT NULL
);

-- Every rated call once, by the PBX's call id, whichever file brought it first.
CREATE TABLE calls (
    call_id     text        PRIMARY KEY,
    import_id   text        NOT NULL REFERENCES imports,
    contract    text        NOT NULL,
    started_at  timestamptz NOT NULL,
    seconds     integer     NOT NULL CHECK (seconds >= 0),
    caller      text        NOT NULL,
    number      text        NOT NULL,
    destination text        NOT NULL,
    prefix      text        NOT NULL,
    price_minor bigint      NOT NULL CHECK (price_minor >= 0),
    currency    char(3)     NOT NULL,
    prepaid     boolean     NOT NULL
);
CREATE INDEX calls_contract ON calls (contract, started_at);

-- Lines of CDR files that were not rated, and why (the operator lists them with
-- `billing voip refused`); a refused call a later file imports drops out of that list.
CREATE TABLE refused (
    id         bigserial   PRIMARY KEY,
    import_id  text        NOT NULL REFERENCES imports,
    file       text        NOT NULL,
    line       integer     NOT NULL,
    "column"   text        NOT NULL,
    value      text        NOT NULL,
    problem    text        NOT NULL,
    call_id    text
);
CREATE INDEX refused_call ON refused (call_id);

-- The prepaid credit's ledger: one entry per paid top-up invoice ("invoice:<number>") and
-- per prepaid call ("call:<id>"); the key makes "never twice" a database guarantee.
CREATE TABLE credit_ledger (
    entry        text        PRIMARY KEY,
    contract     text        NOT NULL,
    currency     char(3)     NOT NULL,
    change_minor bigint      NOT NULL,
    at           timestamptz NOT NULL
);
CREATE INDEX credit_ledger_contract ON credit_ledger (contract, at);

-- Each prepaid balance, and which announcements it made since it was last lifted.
CREATE TABLE credit_balances (
    contract       text        NOT NULL,
    currency       char(3)     NOT NULL,
    balance_minor  bigint      NOT NULL DEFAULT 0,
    low_sent       boolean     NOT NULL DEFAULT false,
    exhausted_sent boolean     NOT NULL DEFAULT false,
    updated_at     timestamptz,
    PRIMARY KEY (contract, currency)
);
