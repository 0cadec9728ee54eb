-- VoIP credit top-ups (services/invoicing/topups.py, migration 009).

-- name: lock_topups
-- Contract $1's top-up row, locked (made at its first use): its cap and requests in turn.
-- Every request (after the year's invoice series) and every change of the cap takes it, so
-- two requests at once see each other's invoice. cap_minor NULL: the currency's default.
INSERT INTO topup_caps (contract) VALUES ($1)
ON CONFLICT (contract) DO UPDATE SET contract = EXCLUDED.contract
RETURNING cap_minor, set_at, set_by;

-- name: get_topup_cap
-- Contract $1's own cap, unlocked, for a listing (no row: the default).
SELECT cap_minor, set_at, set_by FROM topup_caps WHERE contract = $1;

-- name: set_topup_cap
-- Contract $1's cap is $2 from $3, set by $4 (its row locked by lock_topups).
UPDATE topup_caps SET cap_minor = $2, set_at = $3, set_by = $4 WHERE contract = $1;

-- name: get_topup_request
-- Request $2 of contract $1 as decided, with its invoice's state (NULL: not decided yet).
SELECT t.*, i.status AS invoice_status, i.due_on, i.issued_on
FROM topup_requests t LEFT JOIN invoices i USING (invoice_number)
WHERE t.contract = $1 AND t.request_id = $2;

-- name: topups_issued
-- What contract $1's self-service top-ups invoiced in month $2 come to (paid or not).
SELECT coalesce(sum(amount_minor), 0)::bigint FROM topup_requests
WHERE contract = $1 AND month = $2 AND invoice_number IS NOT NULL
  AND requested_by = 'customer';

-- name: record_topup
-- A request's outcome; nothing when the contract and request id are there already.
-- $1 contract, $2 request id, $3 by, $4 who, $5 coupon, $6 amount, $7 currency, $8 month,
-- $9 when, $10 the invoice (NULL: refused), $11 reason code, $12 reason.
INSERT INTO topup_requests (contract, request_id, requested_by, who, coupon, amount_minor,
                            currency, month, decided_at, invoice_number, reason_code, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (contract, request_id) DO NOTHING
RETURNING request_id;

-- name: topups_of_month
-- Contract $1's top-up requests decided in month $2, oldest first, with their invoices.
SELECT t.*, i.status AS invoice_status, i.due_on, i.issued_on
FROM topup_requests t LEFT JOIN invoices i USING (invoice_number)
WHERE t.contract = $1 AND t.month = $2
ORDER BY t.decided_at, t.request_id;

-- name: credit_paid_topups
-- The top-up invoices among a run of settlements that were paid, marked credited, once.
-- $1 invoice numbers, $2 what each asks now, $3 paid, $4 the day; a settlement with
-- nothing paid (a credit note cancelled the invoice) or nothing asked gives no credit.
-- An invoice settled again (reopened and paid) is marked already: nothing returned.
UPDATE topup_requests t SET paid_on = u.d, credit_minor = u.a
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::date[]) AS u(n, a, p, d)
WHERE t.invoice_number = u.n AND t.paid_on IS NULL AND u.p > 0 AND u.a > 0
RETURNING t.contract, t.request_id, t.invoice_number, t.credit_minor, t.currency, t.paid_on;
