-- name: upsert_contacts
INSERT INTO contacts (contract, customer_name, language, contacts, country)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (contract) DO UPDATE
SET customer_name = EXCLUDED.customer_name, language = EXCLUDED.language,
    contacts = EXCLUDED.contacts, country = EXCLUDED.country;

-- name: get_contacts_of
SELECT contract, customer_name, language, contacts, country
FROM contacts WHERE contract = ANY($1::text[]);

-- name: insert_delivery
INSERT INTO deliveries (contract, request_id, kind, channel, recipient, language, subject, body,
                        html, request, next_attempt_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (contract, request_id, channel, recipient) DO NOTHING;

-- name: claim_due
-- The next $2 due deliveries, each leased for $3 seconds of real time in this statement,
-- which commits before anything is sent: no other sender takes them meanwhile, and a
-- sender that dies while sending leaves them to be sent when the lease runs out.
UPDATE deliveries d SET leased_until = clock_timestamp() + make_interval(secs => $3)
FROM (SELECT id FROM deliveries
      WHERE status = 'pending' AND next_attempt_at <= $1
        AND (leased_until IS NULL OR leased_until < clock_timestamp())
      ORDER BY next_attempt_at LIMIT $2
      FOR UPDATE SKIP LOCKED) due
WHERE d.id = due.id
RETURNING d.id, d.contract, d.request_id, d.kind, d.channel, d.recipient, d.subject, d.body,
          d.html, d.request, d.attempts,
          coalesce((SELECT c.country FROM contacts c WHERE c.contract = d.contract), 'CZ')
              AS country;

-- name: postpone
UPDATE deliveries SET next_attempt_at = $2, leased_until = NULL WHERE id = $1;

-- name: mark_sent
-- The server took the message. Pending only: a repeat of the record (after a commit that
-- failed) must not count or announce the delivery twice.
UPDATE deliveries SET status = 'sent', attempts = attempts + 1, sent_at = $2, last_error = NULL,
                      failure_reason = NULL
WHERE id = $1 AND status = 'pending';

-- name: mark_retry
UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3,
                      failure_reason = $4, leased_until = NULL
WHERE id = $1;

-- name: mark_failed
UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_error = $2,
                      failure_reason = $3
WHERE id = $1;

-- name: log_for_contract
SELECT request_id, kind, channel, recipient, status, attempts, last_error, failure_reason,
       created_at, sent_at
FROM deliveries WHERE contract = $1 ORDER BY created_at, id;

-- name: contract_known
SELECT EXISTS (SELECT 1 FROM contacts WHERE contract = $1)
    OR EXISTS (SELECT 1 FROM deliveries WHERE contract = $1);
