-- name: upsert_contract
-- A run of contracts (no contract twice: Unit.stage_row splits there).
INSERT INTO contracts (contract, data, active, monthly_fee_minor, currency, due_kind, due_value,
                       updated_at)
SELECT u.c, u.d::jsonb, u.a, u.f, u.cu, u.k, u.v, u.t
FROM unnest($1::text[], $2::text[], $3::boolean[], $4::bigint[], $5::text[], $6::text[],
            $7::integer[], $8::timestamptz[]) AS u(c, d, a, f, cu, k, v, t)
ON CONFLICT (contract) DO UPDATE
SET data = EXCLUDED.data, active = EXCLUDED.active,
    monthly_fee_minor = EXCLUDED.monthly_fee_minor, currency = EXCLUDED.currency,
    due_kind = EXCLUDED.due_kind, due_value = EXCLUDED.due_value, updated_at = EXCLUDED.updated_at;

-- name: billable_contracts
-- One chunk of a billing run, in contract order (byte order, as the domain sorts).
SELECT contract, active, monthly_fee_minor, currency, due_kind, due_value FROM contracts
WHERE contract COLLATE "C" > $1
ORDER BY contract COLLATE "C"
LIMIT $2;

-- name: invoiced_in_period
SELECT contract FROM invoices WHERE period = $1 AND contract = ANY($2::text[]);

-- name: lock_sequence
INSERT INTO invoice_sequences (year, last) VALUES ($1, 0)
ON CONFLICT (year) DO UPDATE SET last = invoice_sequences.last
RETURNING last;

-- name: hold_run_lock
-- Held by every billing run from its start to its end, shared: a contract is deleted or
-- renumbered only once no run is in flight (migration 005 takes it exclusively).
SELECT pg_advisory_lock_shared(7091318301304122880);

-- name: hold_run_lock_in_transaction
-- The same, for a run inside a caller's transaction: released when it ends.
SELECT pg_advisory_xact_lock_shared(7091318301304122880);

-- name: release_run_lock
SELECT pg_advisory_unlock_shared(7091318301304122880);

-- name: sequence_now
-- Where a pipelined run starts numbering from; each chunk checks it under lock_sequence.
SELECT last FROM invoice_sequences WHERE year = $1;

-- name: set_sequence
UPDATE invoice_sequences SET last = $2 WHERE year = $1;

-- name: record_fee
INSERT INTO pending_fees (contract, request_id, late_invoice, amount_minor, currency, charged_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING;

-- name: unbilled_fees
-- Fees waiting, in each contract's billing currency (others stay for an operator), with
-- the fees summed: those, and no fee charged since, are marked billed (mark_fees_billed).
-- Locked as read: inside a run's transaction, no other run (of another year: another
-- sequence row) can bill them before this one does; one that is billing them now is
-- waited for, and what it billed is left out.
SELECT contract, sum(amount_minor)::bigint AS amount_minor, array_agg(request_id) AS request_ids
FROM (SELECT f.contract, f.amount_minor, f.request_id
      FROM pending_fees f JOIN contracts c USING (contract)
      WHERE f.billed_on IS NULL AND f.currency = c.currency AND f.contract = ANY($1::text[])
      FOR UPDATE OF f) waiting
GROUP BY contract;

-- name: mark_fees_billed
-- Exactly the fees an invoice summed: one row per fee.
UPDATE pending_fees f SET billed_on = i.invoice_number
FROM unnest($1::text[], $2::text[], $3::text[]) AS i(contract, request_id, invoice_number)
WHERE f.contract = i.contract AND f.request_id = i.request_id AND f.billed_on IS NULL;

-- name: record_run
INSERT INTO billing_runs (period, issued_on, issued, run_at) VALUES ($1, $2, $3, $4);

-- name: mark_paid
-- Rows staged one per event (``Unit.stage_row``), written by one statement.
UPDATE invoices i SET status = 'paid', paid_minor = u.p, settled_on = u.d
FROM unnest($1::text[], $2::bigint[], $3::date[]) AS u(n, p, d)
WHERE i.invoice_number = u.n;

-- name: mark_partially_paid
UPDATE invoices i SET status = 'partially_paid', paid_minor = u.p
FROM unnest($1::text[], $2::bigint[]) AS u(n, p)
WHERE i.invoice_number = u.n AND i.status <> 'paid';

-- name: mark_reopened
UPDATE invoices
SET status = CASE WHEN $2 > 0 THEN 'partially_paid' ELSE 'issued' END, paid_minor = $2,
    settled_on = NULL
WHERE invoice_number = $1;

-- name: list_invoices
SELECT invoice_number, contract, vs, ss, period, issued_on, due_on, amount_minor, currency,
       status, paid_minor
FROM invoices WHERE ($1::text IS NULL OR contract = $1) ORDER BY invoice_number;

-- name: get_contracts
SELECT contract, data FROM contracts WHERE contract = ANY($1::text[]);
