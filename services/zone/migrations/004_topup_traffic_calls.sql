-- Top-up, traffic and calls pages (issue 31 items 3, 5; docs/zone.md#top-up, #traffic,
-- #calls): the zone's read model of the usage events and of top-up outcomes.

-- A top-up request, keyed (contract, request_id): made by the zone's form (person_id,
-- requested_at set) and answered by invoicing (topup.invoiced / topup.refused: outcome
-- and the event whole). An operator's request (`billing topup ask`) arrives as an answer
-- only. An answer delivered twice writes the same row again.
CREATE TABLE topups (
    contract     text        NOT NULL,
    request_id   text        NOT NULL,
    person_id    bigint      REFERENCES people ON DELETE SET NULL,
    coupon       text,
    requested_at timestamptz,
    outcome      text        CHECK (outcome IN ('invoiced', 'refused')),
    answer       jsonb,       -- the topup.invoiced or topup.refused event's data
    month        text,        -- the cap's month the answer names
    answered_at  timestamptz, -- when the zone consumed the answer (the latest gives the cap)
    PRIMARY KEY (contract, request_id)
);
CREATE INDEX topups_listed ON topups (contract, coalesce(requested_at, answered_at) DESC);

-- A prepaid VoIP account's latest balance (voip.credit_balance: the newest `at` wins).
CREATE TABLE voip_balances (
    contract      text        PRIMARY KEY,
    balance_minor bigint      NOT NULL,
    currency      char(3)     NOT NULL,
    at            timestamptz NOT NULL
);

-- A contract's closed hour of traffic per address (traffic.hour: the highest revision of
-- (contract, hour) wins, replacing the hour whole).
CREATE TABLE traffic_hours (
    contract  text        NOT NULL,
    hour      timestamptz NOT NULL,
    revision  int         NOT NULL,
    addresses jsonb       NOT NULL,  -- [{"address", "rx_bytes", "tx_bytes"}]
    PRIMARY KEY (contract, hour)
);

-- Rated calls (voip.calls_rated), each call id once per contract.
CREATE TABLE calls (
    contract    text        NOT NULL,
    call_id     text        NOT NULL,
    started_at  timestamptz NOT NULL,
    seconds     int         NOT NULL,
    number      text        NOT NULL,
    destination text        NOT NULL,
    price_minor bigint      NOT NULL,
    currency    char(3)     NOT NULL,
    prepaid     boolean     NOT NULL,
    PRIMARY KEY (contract, call_id)
);
CREATE INDEX calls_by_time ON calls (contract, started_at);
