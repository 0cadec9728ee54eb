-- What each network gear reports it has applied (gear.applied.v1), for the drift between
-- desired and applied access.
CREATE TABLE gear_applied (
    gear       text        NOT NULL,
    contract   text        NOT NULL,
    version    bigint      NOT NULL,
    state      text        NOT NULL,
    applied_at timestamptz NOT NULL,
    PRIMARY KEY (gear, contract)
);
