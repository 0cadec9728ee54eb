-- The customer zone's own state (docs/zone.md): what it learns from events (customers,
-- the e-mails on record, invoices and what was paid on them, payments), and what it owns
-- (people, memberships and rights, one-time links, sessions, failed logins, its audit
-- log, the mail it sends).

-- Read model: one row per contract (customer number = contract number).
CREATE TABLE customers (
    contract      text        PRIMARY KEY,
    customer_name text        NOT NULL,
    language      text        NOT NULL,
    currency      text        NOT NULL,
    active        boolean     NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- Read model: the contacts on record (from the contracts' owner, invoicing). A person
-- asking for access proves the contract number and one of these e-mails.
CREATE TABLE contacts_on_record (
    contract   text    NOT NULL REFERENCES customers ON DELETE CASCADE,
    position   int     NOT NULL,
    name       text    NOT NULL,
    email      text,   -- lower case
    owner      boolean NOT NULL,
    categories text[]  NOT NULL,
    PRIMARY KEY (contract, position)
);
CREATE INDEX contacts_on_record_email ON contacts_on_record (email, contract);

-- Read model: issued invoices (invoicing) ...
CREATE TABLE invoices (
    invoice_number text        PRIMARY KEY,
    contract       text        NOT NULL,
    vs             text        NOT NULL,
    ss             text        NOT NULL,
    period         text        NOT NULL,
    issued_on      date        NOT NULL,
    due_on         date        NOT NULL,
    amount_minor   bigint      NOT NULL,
    currency       text        NOT NULL,
    account        text        NOT NULL,
    cancelled      boolean     NOT NULL DEFAULT false
);
CREATE INDEX invoices_contract ON invoices (contract, issued_on DESC, invoice_number);

-- ... and what payments says is paid on each (settled, partially paid, reopened). Kept
-- apart from ``invoices``: the two arrive on different topics, in no order between them.
CREATE TABLE settlements (
    invoice_number text   PRIMARY KEY,
    contract       text   NOT NULL,
    paid_minor     bigint NOT NULL,
    open_minor     bigint NOT NULL,
    state          text   NOT NULL CHECK (state IN ('paid', 'partially_paid', 'open'))
);

-- Read model: payments matched to a contract, and reversals of them.
CREATE TABLE payments (
    id                   bigserial   PRIMARY KEY,
    contract             text        NOT NULL,
    account              text        NOT NULL,
    bank_tx_id           text        NOT NULL,
    booked_on            date        NOT NULL,
    amount_minor         bigint      NOT NULL,
    currency             text        NOT NULL,
    rule                 text        NOT NULL,
    allocations          jsonb       NOT NULL,
    credit_minor         bigint      NOT NULL,
    credit_balance_minor bigint      NOT NULL,
    reversed_on          date,
    UNIQUE (account, bank_tx_id)
);
CREATE INDEX payments_contract ON payments (contract, booked_on DESC, id DESC);

-- People who log in. ``email`` is lower case; ``password_hash`` an argon2id hash, NULL
-- until the person sets a password through a one-time link.
CREATE TABLE people (
    id                  bigserial   PRIMARY KEY,
    email               text        NOT NULL UNIQUE,
    password_hash       text,
    language            text        NOT NULL DEFAULT 'cs',
    created_at          timestamptz NOT NULL,
    password_changed_at timestamptz
);

-- Who may act for which customer, with which rights (services/zone/domain.py RIGHTS).
-- The owner has every right and cannot be changed from the zone (only by an operator).
CREATE TABLE memberships (
    person_id  bigint      NOT NULL REFERENCES people ON DELETE CASCADE,
    contract   text        NOT NULL,
    owner      boolean     NOT NULL DEFAULT false,
    rights     text[]      NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (person_id, contract)
);
CREATE INDEX memberships_contract ON memberships (contract, person_id);
CREATE UNIQUE INDEX memberships_one_owner ON memberships (contract) WHERE owner;

-- One-time links (request access, reset, invitation), by the SHA-256 of the token: the
-- token itself is only ever in the e-mail.
CREATE TABLE links (
    token_hash bytea       PRIMARY KEY,
    purpose    text        NOT NULL CHECK (purpose IN ('access', 'reset', 'invite')),
    email      text        NOT NULL,
    contract   text,
    owner      boolean     NOT NULL DEFAULT false,
    rights     text[]      NOT NULL DEFAULT '{}',
    invited_by bigint,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

-- Logged-in sessions, by the SHA-256 of the cookie's value (a copy of this table opens no
-- session). ``contract``: the customer the person acts for now.
CREATE TABLE sessions (
    id_hash      bytea       PRIMARY KEY,
    person_id    bigint      NOT NULL REFERENCES people ON DELETE CASCADE,
    contract     text,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX sessions_person ON sessions (person_id);

-- Failed logins, per account (the name typed) and per client address, for throttling.
CREATE TABLE login_failures (
    kind text        NOT NULL CHECK (kind IN ('account', 'address')),
    key  text        NOT NULL,
    at   timestamptz NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (kind, key, at);

-- Every login (and failed one), password change, link, invitation and grant. Append-only,
-- as the operators' trail (runtime migration 003).
CREATE TABLE audit (
    id        bigserial   PRIMARY KEY,
    at        timestamptz NOT NULL,
    actor     text        NOT NULL,  -- a person's e-mail, 'operator:<name>' or 'anonymous'
    action    text        NOT NULL,
    contract  text,
    subject   text,                  -- whom it concerns (an e-mail), when not the actor
    address   text,
    details   jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_contract ON audit (contract, id);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_no_update_or_delete BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- Mail the zone sends (its links), written in the transaction that makes the link and
-- sent by the zone's sender with retries. The body holds a live link: it is blanked once
-- the message is sent or has failed for good.
CREATE TABLE mails (
    id              bigserial   PRIMARY KEY,
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    body            text        NOT NULL,
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    attempts        int         NOT NULL DEFAULT 0,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed')),
    sent_at         timestamptz,
    last_error      text
);
CREATE INDEX mails_due ON mails (next_attempt_at) WHERE status = 'pending';
