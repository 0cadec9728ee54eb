CREATE TABLE access (
    contract      text        PRIMARY KEY,
    customer_name text        NOT NULL DEFAULT '',
    language      text        NOT NULL DEFAULT 'cs',
    subscribers   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state         text        NOT NULL DEFAULT 'active'
                  CHECK (state IN ('active', 'notice', 'restricted', 'suspended')),
    reason        text        NOT NULL DEFAULT 'contract created',
    version       bigint      NOT NULL DEFAULT 0,
    effective_at  timestamptz NOT NULL
);
CREATE INDEX access_ipv4 ON access USING gin ((subscribers -> 'ipv4'));
CREATE INDEX access_state ON access (state, contract);

-- The notice currently on screen for a contract (the dunning request that put it there).
CREATE TABLE notices (
    contract     text        PRIMARY KEY,
    request_id   text        NOT NULL,
    request      jsonb       NOT NULL,
    requested_at timestamptz NOT NULL
);

-- Evidence that the customer confirmed the notice.
CREATE TABLE acknowledgements (
    id              bigserial   PRIMARY KEY,
    contract        text        NOT NULL,
    request_id      text        NOT NULL,
    acknowledged_at timestamptz NOT NULL,
    address         text        NOT NULL,
    user_agent      text,
    UNIQUE (contract, request_id)
);
