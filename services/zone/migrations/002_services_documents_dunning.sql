-- The customer zone's read models for the services, documents and access pages
-- (docs/zone.md): each contract's services and subscriber addresses, its invoices' PDF and
-- ISDOC, and the latest explanation of its dunning situation.

-- Read model: what contract.upserted says of a contract's services and addresses. Its own
-- table beside ``customers``: the services page reads it alone.
CREATE TABLE customer_services (
    contract          text        PRIMARY KEY,
    currency          text        NOT NULL,
    monthly_fee_minor bigint      NOT NULL,
    services          jsonb,      -- the event's services; NULL: not told (an older producer)
    subscribers       jsonb       NOT NULL,
    updated_at        timestamptz NOT NULL
);

-- Read model: documents made by invoicing (document.ready), one row per file. The bytes
-- are kept with the SHA-256 invoicing archived them under; a download checks it again.
CREATE TABLE documents (
    number      text        NOT NULL,
    media_type  text        NOT NULL CHECK (media_type IN ('application/pdf', 'application/xml')),
    contract    text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    filename    text        NOT NULL,
    sha256      text        NOT NULL,
    content     bytea       NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (number, media_type)
);
CREATE INDEX documents_contract ON documents (contract, number);

-- Read model: the latest explanation of each contract's dunning situation (dunning.status).
CREATE TABLE dunning_status (
    contract   text        PRIMARY KEY,
    stage      text        NOT NULL,
    decided_at timestamptz NOT NULL,
    status     jsonb       NOT NULL
);
