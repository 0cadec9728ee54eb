CREATE TABLE contacts (
    contract      text  PRIMARY KEY,
    customer_name text  NOT NULL,
    language      text  NOT NULL,
    contacts      jsonb NOT NULL
);

-- One row per message: the unique key makes "exactly one message per contract, request
-- (reason + step), channel and recipient" a database guarantee.
CREATE TABLE deliveries (
    id              bigserial   PRIMARY KEY,
    contract        text        NOT NULL,
    request_id      text        NOT NULL,
    kind            text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient       text        NOT NULL,
    language        text        NOT NULL,
    subject         text        NOT NULL,
    body            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    UNIQUE (contract, request_id, channel, recipient)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
