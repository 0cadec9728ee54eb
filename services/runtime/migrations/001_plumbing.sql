-- Plumbing every service schema has: the transactional outbox, the inbox (idempotent
-- consumer) and durable timers. Applied with search_path set to the service's schema.

CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text        NOT NULL,
    key         bytea,
    value       bytea       NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    event_type  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE timers (
    key     text        PRIMARY KEY,
    due_at  timestamptz NOT NULL
);
CREATE INDEX timers_due_at ON timers (due_at);

CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    key         bytea,
    value       bytea,
    reason      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
