-- Restriction as a stage, contract groups, promises to pay and operator postponements,
-- operator exemptions with a reason, and payments waiting unmatched (a fairness guard).
ALTER TABLE state DROP CONSTRAINT state_stage_check;
ALTER TABLE state ADD CONSTRAINT state_stage_check
    CHECK (stage IN ('active', 'notice', 'restricted', 'suspended'));
ALTER TABLE contracts ALTER COLUMN policy DROP NOT NULL;
ALTER TABLE contracts ADD COLUMN grp text;

CREATE TABLE promises (
    id         bigserial   PRIMARY KEY,
    contract   text        NOT NULL,
    until      timestamptz NOT NULL,
    by         text        NOT NULL CHECK (by IN ('customer', 'operator')),
    reason     text        NOT NULL DEFAULT '',
    address    text,
    user_agent text,
    made_at    timestamptz NOT NULL,
    accepted   boolean     NOT NULL,
    note       text        NOT NULL DEFAULT ''
);
CREATE INDEX promises_contract ON promises (contract, made_at);

CREATE TABLE exemptions (
    contract   text        PRIMARY KEY,
    reason     text        NOT NULL,
    by         text        NOT NULL,
    since      timestamptz NOT NULL
);

CREATE TABLE unmatched_payments (
    contract   text        PRIMARY KEY,
    since      timestamptz NOT NULL,
    bank_tx_id text        NOT NULL
);
