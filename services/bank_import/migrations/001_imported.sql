-- What our statement importer has published: the dedupe that makes re-importing a
-- statement, or an overlapping one, publish nothing new. Keyed like the contract says a
-- movement is identified: our account + the bank's movement id.

CREATE TABLE imported (
    account      text        NOT NULL,
    bank_tx_id   text        NOT NULL,
    file         text        NOT NULL,
    format       text        NOT NULL,
    amount_minor bigint      NOT NULL,
    currency     char(3)     NOT NULL,
    imported_at  timestamptz NOT NULL,
    PRIMARY KEY (account, bank_tx_id)
);

-- One row per Fio API token (by digest, never the token itself): when we last asked, so
-- every process honours Fio's one request per 30 seconds.
CREATE TABLE fio_requests (
    token_digest text PRIMARY KEY,
    last_at      timestamptz
);
