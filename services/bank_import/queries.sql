-- name: insert_new
INSERT INTO imported (account, bank_tx_id, file, format, amount_minor, currency, imported_at)
SELECT a, t, $3, $4, m, c, $7
FROM unnest($1::text[], $2::text[], $5::bigint[], $6::text[]) AS u(a, t, m, c)
ON CONFLICT (account, bank_tx_id) DO NOTHING
RETURNING account, bank_tx_id;

-- name: fio_last_request
INSERT INTO fio_requests (token_digest, last_at) VALUES ($1, NULL)
ON CONFLICT (token_digest) DO UPDATE SET token_digest = EXCLUDED.token_digest
RETURNING last_at;

-- name: fio_mark_request
UPDATE fio_requests SET last_at = $2 WHERE token_digest = $1;
