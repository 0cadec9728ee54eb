-- Postpaid VoIP calls on the periodic invoice (issue 31 item 3, docs/invoices.md#postpaid-calls):
-- the rated calls of voip.calls_rated.v1 with prepaid = false, each call id once per
-- contract, waiting for the contract's next periodic invoice; billed_on is the invoice
-- that carries them (marked in the billing run's transaction that writes it). No foreign
-- key: a chunk marks its calls before it copies its invoices (as one_off_items).
CREATE TABLE voip_calls (
    id          bigserial   PRIMARY KEY,
    contract    text        NOT NULL,
    call_id     text        NOT NULL,
    started_at  timestamptz NOT NULL,
    seconds     int         NOT NULL CHECK (seconds >= 0),
    destination text        NOT NULL,
    price_minor bigint      NOT NULL CHECK (price_minor >= 0),
    currency    char(3)     NOT NULL,
    import_id   text        NOT NULL,
    billed_on   text,
    UNIQUE (contract, call_id)
);
CREATE INDEX voip_calls_waiting ON voip_calls (contract, started_at) WHERE billed_on IS NULL;
