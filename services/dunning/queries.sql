-- name: upsert_contract
INSERT INTO contracts (contract, country, currency, policy, exempt) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (contract) DO UPDATE
SET country = EXCLUDED.country, currency = EXCLUDED.currency, policy = EXCLUDED.policy,
    exempt = EXCLUDED.exempt;

-- name: get_contract
SELECT contract, country, currency, policy, exempt FROM contracts WHERE contract = $1;

-- name: invoice_issued
INSERT INTO invoices (invoice_number, contract, vs, ss, due_on, amount_minor, open_minor, currency)
VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
ON CONFLICT (invoice_number) DO UPDATE
SET vs = EXCLUDED.vs, ss = EXCLUDED.ss, due_on = EXCLUDED.due_on,
    amount_minor = EXCLUDED.amount_minor, currency = EXCLUDED.currency,
    open_minor = COALESCE(invoices.open_minor, EXCLUDED.open_minor);

-- name: invoice_settled
INSERT INTO invoices (invoice_number, contract, open_minor, settled) VALUES ($1, $2, 0, true)
ON CONFLICT (invoice_number) DO UPDATE SET open_minor = 0, settled = true;

-- name: invoice_partially_paid
INSERT INTO invoices (invoice_number, contract, open_minor) VALUES ($1, $2, $3)
ON CONFLICT (invoice_number) DO UPDATE SET open_minor = EXCLUDED.open_minor
WHERE NOT invoices.settled;

-- name: invoice_reopened
UPDATE invoices SET open_minor = $3, settled = false
WHERE invoice_number = $1 AND contract = $2;

-- name: unpaid_invoices
SELECT invoice_number, vs, ss, due_on, open_minor, currency
FROM invoices WHERE contract = $1 AND NOT settled AND due_on IS NOT NULL;

-- name: get_state
SELECT stage, episode, acknowledged_at FROM state WHERE contract = $1 FOR UPDATE;

-- name: save_state
INSERT INTO state (contract, stage, episode, acknowledged_at, why, next_check_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (contract) DO UPDATE
SET stage = EXCLUDED.stage, episode = EXCLUDED.episode,
    acknowledged_at = EXCLUDED.acknowledged_at, why = EXCLUDED.why,
    next_check_at = EXCLUDED.next_check_at, updated_at = EXCLUDED.updated_at;

-- name: acknowledge
-- Only a notice on screen can be confirmed; the first confirmation counts.
UPDATE state SET acknowledged_at = COALESCE(acknowledged_at, $2), updated_at = $3
WHERE contract = $1 AND stage = 'notice';

-- name: done_actions
SELECT request_id FROM actions WHERE contract = $1;

-- name: insert_action
INSERT INTO actions (contract, request_id, kind, step, decided_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING
RETURNING request_id;

-- name: actions_of
SELECT request_id, kind, step, decided_at FROM actions WHERE contract = $1 ORDER BY decided_at;
