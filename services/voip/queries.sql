-- name: upsert_contracts
-- Contracts $1 with their currencies $2 and prepaid flags $3, one row per contract.
-- A NULL flag (the producer did not list services) keeps the flag as it was.
INSERT INTO contracts (contract, currency, prepaid)
SELECT u.c, u.cur, coalesce(u.p, old.prepaid, false)
FROM unnest($1::text[], $2::text[], $3::boolean[]) AS u(c, cur, p)
LEFT JOIN contracts old ON old.contract = u.c
ON CONFLICT (contract) DO UPDATE SET currency = EXCLUDED.currency, prepaid = EXCLUDED.prepaid;

-- name: contract_terms
-- Every contract's currency and prepaid flag, for rating a file.
SELECT contract, currency, prepaid FROM contracts;

-- name: claim_import
-- File $1 (its hash) recorded as imported; no row: it was imported before.
INSERT INTO imports (import_id, file, format, lines, rated, already, skipped, refused, imported_at)
VALUES ($1, $2, $3, 0, 0, 0, 0, 0, $4)
ON CONFLICT (import_id) DO NOTHING
RETURNING import_id;

-- name: import_of
-- An import recorded earlier, by its hash.
SELECT * FROM imports WHERE import_id = $1;

-- name: finish_import
-- Import $1's counts.
UPDATE imports SET lines = $2, rated = $3, already = $4, skipped = $5, refused = $6
WHERE import_id = $1;

-- name: forget_refused
-- Import $1's refused lines, dropped before its file is rated again.
DELETE FROM refused WHERE import_id = $1;

-- name: calls_stage
-- A temporary table the import COPYs its rated calls into (dropped at commit).
CREATE TEMPORARY TABLE calls_in (LIKE calls) ON COMMIT DROP;

-- name: calls_insert_new
-- The staged calls not recorded before (by call id), recorded; returns their ids.
INSERT INTO calls SELECT * FROM calls_in
ON CONFLICT (call_id) DO NOTHING
RETURNING call_id;

-- name: list_refused
-- Refused CDR lines no later import settled (all with $1), newest file first, at most $2.
SELECT r.file, r.line, r."column", r.value, r.problem, r.call_id, i.imported_at
FROM refused r JOIN imports i USING (import_id)
WHERE $1 OR r.call_id IS NULL OR NOT EXISTS (SELECT 1 FROM calls c WHERE c.call_id = r.call_id)
ORDER BY i.imported_at DESC, r.file, r.line
LIMIT $2;

-- name: ledger_insert_new
-- Ledger entries $1 (changes $4) of contract $2 in currency $3 at $5, returning the new ones.
INSERT INTO credit_ledger (entry, contract, currency, change_minor, at)
SELECT e, $2, $3, m, $5 FROM unnest($1::text[], $4::bigint[]) AS u(e, m)
ON CONFLICT (entry) DO NOTHING
RETURNING change_minor;

-- name: ensure_balance
-- A balance row for contract $1 in currency $2, at zero if it had none.
INSERT INTO credit_balances (contract, currency) VALUES ($1, $2)
ON CONFLICT (contract, currency) DO NOTHING;

-- name: balance_for_update
-- A contract's balance in a currency, locked until commit.
-- The import and the worker may change one balance at once.
SELECT balance_minor, low_sent, exhausted_sent FROM credit_balances
WHERE contract = $1 AND currency = $2 FOR UPDATE;

-- name: set_balance
-- A contract's balance after a change.
UPDATE credit_balances
SET balance_minor = $3, low_sent = $4, exhausted_sent = $5, updated_at = $6
WHERE contract = $1 AND currency = $2;

-- name: balances_of
-- Contract $1's balances, one per currency.
SELECT currency, balance_minor, low_sent, exhausted_sent, updated_at
FROM credit_balances WHERE contract = $1 ORDER BY currency;

-- name: ledger_of
-- Contract $1's latest ledger entries, at most $2.
SELECT entry, currency, change_minor, at FROM credit_ledger
WHERE contract = $1 ORDER BY at DESC, entry LIMIT $2;

-- name: exhausted_balances
-- How many prepaid balances are at zero or less, for the gauge.
SELECT count(*) FROM credit_balances WHERE balance_minor <= 0;

-- name: calls_of
-- Contract $1's rated calls that started in [$2, $3), oldest first, at most $4.
SELECT call_id, started_at, seconds, caller, number, destination, prefix, price_minor,
       currency, prepaid
FROM calls WHERE contract = $1 AND started_at >= $2 AND started_at < $3
ORDER BY started_at, call_id LIMIT $4;

-- name: calls_total
-- Contract $1's calls that started in [$2, $3): count, seconds and price per currency.
SELECT currency, count(*) AS calls, sum(seconds)::bigint AS seconds,
       sum(price_minor)::bigint AS price_minor
FROM calls WHERE contract = $1 AND started_at >= $2 AND started_at < $3
GROUP BY currency ORDER BY currency;

-- name: contract_known
-- Whether voip knows contract $1 (from contract.upserted) or has calls of it.
SELECT EXISTS (SELECT 1 FROM contracts WHERE contract = $1)
    OR EXISTS (SELECT 1 FROM calls WHERE contract = $1);
