-- name: upsert_contacts
-- Contract $1's customer name, language, contacts and country, as contract events say.
INSERT INTO contacts (contract, customer_name, language, contacts, country)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (contract) DO UPDATE
SET customer_name = EXCLUDED.customer_name, language = EXCLUDED.language,
    contacts = EXCLUDED.contacts, country = EXCLUDED.country;

-- name: get_contacts_of
-- The contacts of contracts $1 notify knows, to address a run of requests.
SELECT contract, customer_name, language, contacts, country
FROM contacts WHERE contract = ANY($1::text[]);

-- name: insert_delivery
-- One message to one recipient on one channel; a repeat of the request adds nothing.
-- $1-$12 are the fields of ``NewDelivery`` (services/notify/service.py), in its order.
INSERT INTO deliveries (contract, request_id, kind, channel, recipient, language, subject, body,
                        html, request, next_attempt_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (contract, request_id, channel, recipient) DO NOTHING;

-- name: claim_due
-- The next $2 deliveries due by $1, each leased for $3 seconds, with the contract's country.
-- The lease is real time, set in this statement, which commits before anything is sent:
-- no other sender takes them meanwhile, and a sender that dies while sending leaves them
-- to be sent when the lease runs out.
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
-- Delivery $1 postponed to $2 (the recipient's quiet hours), its lease given up.
UPDATE deliveries SET next_attempt_at = $2, leased_until = NULL WHERE id = $1;

-- name: mark_sent
-- Delivery $1 sent at $2: the server took the message.
-- Pending only: a repeat of the record (after a commit that failed) must not count or
-- announce the delivery twice.
UPDATE deliveries SET status = 'sent', attempts = attempts + 1, sent_at = $2, last_error = NULL,
                      failure_reason = NULL
WHERE id = $1 AND status = 'pending';

-- name: mark_retry
-- Delivery $1 failed for now: another attempt at $2, the error and its reason kept.
UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3,
                      failure_reason = $4, leased_until = NULL
WHERE id = $1;

-- name: mark_failed
-- Delivery $1 failed for good, the error and its reason kept.
UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_error = $2,
                      failure_reason = $3
WHERE id = $1;

-- name: log_for_contract
-- Contract $1's deliveries, oldest first, with their attempts and errors (for an operator).
SELECT request_id, kind, channel, recipient, status, attempts, last_error, failure_reason,
       created_at, sent_at
FROM deliveries WHERE contract = $1 ORDER BY created_at, id;

-- name: contract_known
-- Whether notify knows contract $1 at all (contacts or deliveries): an empty log or a typo.
SELECT EXISTS (SELECT 1 FROM contacts WHERE contract = $1)
    OR EXISTS (SELECT 1 FROM deliveries WHERE contract = $1);

-- name: wake_sender
-- Wake the sender (it listens on notify_deliveries) when the transaction commits: new mail.
SELECT pg_notify('notify_deliveries', '');

-- name: due_deliveries
-- Deliveries due by $1, not yet sent or failed: the sender's own work (devstack quiescence).
-- Notify's ServiceSpec.pending: the dev stack waits for 0 (services/devstack/quiesce.py).
SELECT count(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1;

-- name: insert_attachment
-- Attachment $3 of request $2 of contract $1 (a document's PDF or ISDOC), kept once.
-- $4 its file name, $5 media type, $6 bytes, $7 sha256; a repeat of the document adds nothing.
INSERT INTO attachments (contract, request_id, position, filename, media_type, content, sha256)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT DO NOTHING;

-- name: attachments_of
-- The attachments of request $2 of contract $1, in order.
SELECT filename, media_type, content FROM attachments
WHERE contract = $1 AND request_id = $2 ORDER BY position;

-- name: pending_gauges
-- Deliveries waiting to be sent (first tries and retries) and the oldest's age at $1.
-- For /metrics; the partial index deliveries_due holds exactly the pending ones.
SELECT count(*) AS n, coalesce(extract(epoch FROM $1::timestamptz - min(created_at)), 0)::float8 AS oldest
FROM deliveries WHERE status = 'pending';
