-- name: upsert_contacts
INSERT INTO contacts (contract, customer_name, language, contacts) VALUES ($1, $2, $3, $4)
ON CONFLICT (contract) DO UPDATE
SET customer_name = EXCLUDED.customer_name, language = EXCLUDED.language,
    contacts = EXCLUDED.contacts;

-- name: get_contacts
SELECT customer_name, language, contacts FROM contacts WHERE contract = $1;

-- name: insert_delivery
INSERT INTO deliveries (contract, request_id, kind, channel, recipient, language, subject, body,
                        next_attempt_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
ON CONFLICT (contract, request_id, channel, recipient) DO NOTHING;

-- name: claim_due
SELECT id, contract, request_id, kind, channel, recipient, subject, body, attempts
FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1
ORDER BY next_attempt_at LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: mark_sent
UPDATE deliveries SET status = 'sent', attempts = attempts + 1, sent_at = $2, last_error = NULL
WHERE id = $1;

-- name: mark_retry
UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3
WHERE id = $1;

-- name: mark_failed
UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_error = $2 WHERE id = $1;

-- name: log_for_contract
SELECT request_id, kind, channel, recipient, status, attempts, last_error, created_at, sent_at
FROM deliveries WHERE contract = $1 ORDER BY created_at, id;
