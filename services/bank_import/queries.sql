-- name: insert_new
-- A statement's movements $1-$2 recorded once; returns those not recorded before.
INSERT INTO imported (account, bank_tx_id, file, format, amount_minor, currency, imported_at)
SELECT a, t, $3, $4, m, c, $7
FROM unnest($1::text[], $2::text[], $5::bigint[], $6::text[]) AS u(a, t, m, c)
ON CONFLICT (account, bank_tx_id) DO NOTHING
RETURNING account, bank_tx_id;

-- name: fio_last_request
-- When the Fio token with digest $1 last asked the bank, its row locked (NULL: never).
-- The row lock serialises every process using the token: Fio allows one request in 30 s.
INSERT INTO fio_requests (token_digest, last_at) VALUES ($1, NULL)
ON CONFLICT (token_digest) DO UPDATE SET token_digest = EXCLUDED.token_digest
RETURNING last_at;

-- name: fio_mark_request
-- The Fio token with digest $1 asked the bank at $2.
UPDATE fio_requests SET last_at = $2 WHERE token_digest = $1;

-- name: outbox_has_events
-- Whether the importer's outbox holds anything to publish (one row is enough to know).
SELECT EXISTS (SELECT 1 FROM outbox);

-- name: outbox_rows
-- The outbox rows left unpublished, to say how many wait when Kafka does not answer.
SELECT count(*) FROM outbox;

-- name: server_time
-- The database server's time now, not the transaction's: every process shares its clock.
SELECT clock_timestamp();
