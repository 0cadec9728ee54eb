-- Traffic per address (docs/usage.md#traffic). Gear reports cumulative counters; the last
-- reading of each (gear, address) is kept to take the next one's difference.
CREATE TABLE readings (
    gear         text        NOT NULL,
    address      text        NOT NULL,
    boot_id      text        NOT NULL,
    collected_at timestamptz NOT NULL,
    rx_bytes     bigint      NOT NULL,
    tx_bytes     bigint      NOT NULL,
    PRIMARY KEY (gear, address)
);

-- The traffic (bytes, not cumulative) per contract and address in 5-minute buckets, hours
-- and days, all three written in the transaction that counts a report. Contract '': an
-- address nobody's subscribers hold (kept, shown to no customer).
CREATE TABLE traffic_5min (
    contract text        NOT NULL,
    address  text        NOT NULL,
    start    timestamptz NOT NULL,
    rx_bytes bigint      NOT NULL,
    tx_bytes bigint      NOT NULL,
    PRIMARY KEY (contract, start, address)
);
CREATE INDEX traffic_5min_start ON traffic_5min (start);

CREATE TABLE traffic_hour (LIKE traffic_5min INCLUDING ALL);
CREATE INDEX traffic_hour_start ON traffic_hour (start);

CREATE TABLE traffic_day (
    contract text   NOT NULL,
    address  text   NOT NULL,
    day      date   NOT NULL,
    rx_bytes bigint NOT NULL,
    tx_bytes bigint NOT NULL,
    PRIMARY KEY (contract, day, address)
);

-- Each (contract, hour) that got traffic, and the revision of traffic.hour.v1 last
-- published for it; dirty: changed since (a late report in a closed hour sets it again).
CREATE TABLE hours (
    contract text        NOT NULL,
    hour     timestamptz NOT NULL,
    revision integer     NOT NULL DEFAULT 0,
    dirty    boolean     NOT NULL DEFAULT true,
    PRIMARY KEY (hour, contract)
);
CREATE INDEX hours_dirty ON hours (hour) WHERE dirty;

-- The networks of each contract's subscribers (contract.upserted), for counters that come
-- without a contract.
CREATE TABLE networks (
    contract text NOT NULL,
    network  cidr NOT NULL,
    PRIMARY KEY (contract, network)
);
CREATE INDEX networks_network ON networks USING gist (network inet_ops);
