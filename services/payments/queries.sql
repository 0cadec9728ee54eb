-- name: get_contract
-- Contract $1 and its billing currency, if payments knows it.
SELECT contract, currency FROM contracts WHERE contract = $1;

-- name: contracts_named
-- The contracts among $1 payments knows, with their currencies, in contract order.
SELECT contract, currency FROM contracts WHERE contract = ANY($1::text[]) ORDER BY contract;

-- name: open_invoices
-- Contract $1's unpaid invoices, locked, oldest due first: the order a payment pays them.
SELECT invoice_number, contract, ss, due_on, amount_minor, paid_minor, currency
FROM invoices WHERE contract = $1 AND NOT settled
ORDER BY due_on, invoice_number
FOR UPDATE;

-- name: invoices_named
-- Invoices a payment's message names by number or SS, settled ones too.
-- Settled ones still say whose the payment is; they count as fully paid.
SELECT invoice_number, contract, ss, due_on, amount_minor,
       CASE WHEN settled THEN amount_minor ELSE paid_minor END AS paid_minor, currency
FROM invoices WHERE invoice_number = ANY($1::text[]) OR ss = ANY($1::text[])
ORDER BY due_on, invoice_number;

-- name: get_invoice
-- Invoice $1 and what is paid of it, locked: for credit, a reversal or an assignment.
SELECT invoice_number, contract, ss, due_on, amount_minor, paid_minor, currency
FROM invoices WHERE invoice_number = $1
FOR UPDATE;

-- name: update_invoice_paid
-- Invoice $1's paid amount, whether it is settled, and what the tolerance forgave.
UPDATE invoices SET paid_minor = $2, settled = $3, forgiven_minor = $4
WHERE invoice_number = $1;

-- name: payer_contract
-- The contract an operator confirmed counterparty account $1 pays for.
SELECT p.contract, c.currency
FROM payer_accounts p JOIN contracts c USING (contract)
WHERE p.counterparty_account = $1;

-- name: confirm_payer
-- Counterparty account $1 pays contract $2, as an operator confirmed (the latest wins).
INSERT INTO payer_accounts (counterparty_account, contract, confirmed_by, confirmed_at, note)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (counterparty_account) DO UPDATE
SET contract = EXCLUDED.contract, confirmed_by = EXCLUDED.confirmed_by,
    confirmed_at = EXCLUDED.confirmed_at, note = EXCLUDED.note;

-- name: insert_bank_tx
-- A movement, paired or queued; returns its id unless (account, bank_tx_id) was stored.
-- $1-$18 are the fields of ``BankTx`` (services/payments/ledger.py), in its order.
INSERT INTO bank_transactions (account, bank_tx_id, event_id, booked_on, amount_minor, currency,
                               vs, ss, data, contract, status, reason_code, reason, received_at,
                               counterparty_account, counterparty_name, message, rule)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
ON CONFLICT (account, bank_tx_id) DO NOTHING
RETURNING bank_tx_id;

-- name: get_bank_tx
-- Movement ($1, $2) as stored, its value date from the event, locked for a change.
SELECT account, bank_tx_id, booked_on, value_on, amount_minor, currency, vs, ss, contract,
       status, reason_code, reason, rule, counterparty_account, counterparty_name, message,
       reversal_of, reversed_by, assigned_by, note, received_at, resolved_at
FROM (SELECT *, (data ->> 'value_on')::date AS value_on FROM bank_transactions) t
WHERE account = $1 AND bank_tx_id = $2
FOR UPDATE;

-- name: reversible_credits
-- Credits a debit could be returning: same account, currency and amount, not yet reversed.
SELECT account, bank_tx_id, booked_on, amount_minor, currency, vs, ss, counterparty_account
FROM bank_transactions
WHERE account = $1 AND currency = $2 AND amount_minor = $3 AND status IN ('matched', 'unmatched')
ORDER BY booked_on, bank_tx_id
FOR UPDATE;

-- name: waiting_reversals
-- Debits booked as unmatched that could be the reversal of a credit arriving late.
SELECT account, bank_tx_id, booked_on, amount_minor, currency, vs, ss, counterparty_account
FROM bank_transactions
WHERE account = $1 AND currency = $2 AND amount_minor = $3 AND status = 'unmatched'
ORDER BY booked_on, bank_tx_id
FOR UPDATE;

-- name: mark_reversed
-- Credit ($1, $2) taken back by debit $3 at $4.
UPDATE bank_transactions SET status = 'reversed', reversed_by = $3, resolved_at = $4
WHERE account = $1 AND bank_tx_id = $2;

-- name: mark_reversal
-- Debit ($1, $2) stored as the return of credit $3 (of contract $5), out of the queue.
UPDATE bank_transactions
SET status = 'reversal', reversal_of = $3, reason_code = NULL, reason = NULL, resolved_at = $4,
    contract = $5
WHERE account = $1 AND bank_tx_id = $2;

-- name: mark_assigned
-- Movement ($1, $2) paired by hand to contract $3 by operator $4, out of the queue.
UPDATE bank_transactions
SET status = 'matched', contract = $3, rule = 'manual', assigned_by = $4, note = $5,
    resolved_at = $6, reason_code = NULL, reason = NULL
WHERE account = $1 AND bank_tx_id = $2;

-- name: insert_allocation
-- What one payment (or credit lot) paid to one invoice, and the rule that paired them.
INSERT INTO allocations (account, bank_tx_id, invoice_number, amount_minor, rule)
VALUES ($1, $2, $3, $4, $5);

-- name: live_allocations_of
-- What a payment paid, directly and through its credit, not yet taken back.
SELECT a.id, a.invoice_number, a.amount_minor, a.rule
FROM allocations a
WHERE a.account = $1 AND a.bank_tx_id = $2 AND NOT a.reversed
ORDER BY a.id
FOR UPDATE;

-- name: reverse_allocations
-- Allocations $1 taken back; the rows stay, so what they paid is still on record.
UPDATE allocations SET reversed = true WHERE id = ANY($1::bigint[]);

-- name: credit_lots
-- Contract $1's unspent credit lots, locked, oldest first: the order they are spent in.
SELECT id, account, bank_tx_id, remaining_minor
FROM credit_lots WHERE contract = $1 AND remaining_minor > 0
ORDER BY id
FOR UPDATE;

-- name: credit_balance
-- Contract $1's unspent credit in total.
SELECT coalesce(sum(remaining_minor), 0)::bigint FROM credit_lots WHERE contract = $1;

-- name: add_credit_lot
-- A payment's overpayment kept as credit of contract $3; a second one adds to its lot.
INSERT INTO credit_lots (account, bank_tx_id, contract, currency, remaining_minor)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (account, bank_tx_id)
DO UPDATE SET remaining_minor = credit_lots.remaining_minor + EXCLUDED.remaining_minor;

-- name: spend_credit_lot
-- Take $2 from credit lot $1, paid to an invoice.
UPDATE credit_lots SET remaining_minor = remaining_minor - $2 WHERE id = $1;

-- name: credit_lot_of
-- What is left of payment ($1, $2)'s credit lot, locked: a reversal takes it back.
SELECT remaining_minor FROM credit_lots WHERE account = $1 AND bank_tx_id = $2 FOR UPDATE;

-- name: drop_credit_lot
-- A reversed payment's unspent credit leaves with it.
UPDATE credit_lots SET remaining_minor = 0 WHERE account = $1 AND bank_tx_id = $2;

-- name: list_unmatched
-- The unmatched queue for operators: credits no rule paired, oldest first, $1 at most.
SELECT account, bank_tx_id, booked_on, amount_minor, currency, vs, ss, counterparty_account,
       counterparty_name, message, reason_code, reason, received_at
FROM bank_transactions WHERE status = 'unmatched' AND amount_minor > 0
ORDER BY received_at, account, bank_tx_id
LIMIT $1;

-- name: allocations_of
-- All movement ($1, $2) paid, taken back or not, in the order it was paid.
SELECT invoice_number, amount_minor, rule, reversed FROM allocations
WHERE account = $1 AND bank_tx_id = $2 ORDER BY id;

-- Set-based pairing of a run of movements: the facts of the run in one statement
-- (``facts.run``), and their writes as one statement per table (``ledger.write``).

-- name: batch_facts
-- Everything pairing a run by rules 1-2 needs, in one round trip instead of five.
-- Under load each round trip is a wait for PostgreSQL on busy CPUs.
-- $1 the VSs, $2 the SSs; $3-$6 each payment's account, bank_tx_id, currency, amount.
-- Each column is an array of rows:
-- contracts: (contract, currency) named by a VS;
-- invoices: open invoices of those contracts and of the contracts an SS names, locked in
--   (due_on, invoice_number) order;
-- known: (account, bank_tx_id) already stored, a repeat;
-- waiting: (account, currency, amount) of unmatched debits a payment of the run could be
--   the original of; for such a payment the domain asks for those debits (waiting_reversals);
-- balances: (contract, credit) of the contracts of both.
WITH named AS MATERIALIZED (
    SELECT contract, currency FROM contracts WHERE contract = ANY($1::text[])
), open AS MATERIALIZED (
    SELECT invoice_number, contract, ss, due_on, amount_minor, paid_minor, currency
    FROM invoices
    WHERE NOT settled
      AND contract = ANY(ARRAY(SELECT contract FROM named)
                         || ARRAY(SELECT contract FROM invoices
                                  WHERE ss = ANY($2::text[]) AND NOT settled))
    ORDER BY due_on, invoice_number
    FOR UPDATE
)
SELECT
    ARRAY(SELECT row(contract, currency) FROM named) AS contracts,
    ARRAY(SELECT row(invoice_number, contract, ss, due_on, amount_minor, paid_minor, currency)
          FROM open ORDER BY due_on, invoice_number) AS invoices,
    ARRAY(SELECT row(t.account, t.bank_tx_id)
          FROM bank_transactions t
          JOIN unnest($3::text[], $4::text[]) AS u(account, bank_tx_id)
            ON t.account = u.account AND t.bank_tx_id = u.bank_tx_id) AS known,
    -- char(3) like the column: compared as text, the currency could not narrow the index
    -- and every probe would walk all of the account's transactions
    ARRAY(SELECT DISTINCT row(t.account, t.currency::text, -t.amount_minor)
          FROM bank_transactions t
          JOIN unnest($3::text[], $5::char(3)[], $6::bigint[]) AS u(account, currency, amount_minor)
            ON t.account = u.account AND t.currency = u.currency
           AND t.amount_minor = -u.amount_minor
          WHERE t.status = 'unmatched') AS waiting,
    ARRAY(SELECT row(contract, sum(remaining_minor)::bigint)
          FROM credit_lots
          WHERE remaining_minor > 0
            AND contract = ANY(ARRAY(SELECT contract FROM named UNION SELECT contract FROM open))
          GROUP BY contract) AS balances;

-- name: insert_matched_txs
-- The movements a run paired, one array a ``BankTx`` field ($1-$18 as insert_bank_tx's).
-- Their absence was checked under the run's facts, so a conflict here is a bug to
-- surface, not a repeat to skip.
INSERT INTO bank_transactions (account, bank_tx_id, event_id, booked_on, amount_minor, currency,
                               vs, ss, data, contract, status, reason_code, reason, received_at,
                               counterparty_account, counterparty_name, message, rule)
SELECT u.a, u.b, u.e, u.d, u.m, u.c, u.vs, u.ss, u.j::jsonb, u.k, u.st, u.rc, u.r, u.t, u.ca,
       u.cn, u.msg, u.ru
FROM unnest($1::text[], $2::text[], $3::uuid[], $4::date[], $5::bigint[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
            $13::text[], $14::timestamptz[], $15::text[], $16::text[], $17::text[],
            $18::text[]) AS u(a, b, e, d, m, c, vs, ss, j, k, st, rc, r, t, ca, cn, msg, ru);

-- name: insert_allocations
-- A run's allocations, in the order paired (ids grow in that order).
INSERT INTO allocations (account, bank_tx_id, invoice_number, amount_minor, rule)
SELECT u.a, u.b, u.n, u.m, u.r
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])
     WITH ORDINALITY AS u(a, b, n, m, r, i)
ORDER BY u.i;

-- name: update_invoices_paid
-- A run's paid figures, one array a column, one row per invoice.
-- The writes keep each invoice's last figures: UPDATE cannot touch a row twice.
UPDATE invoices i SET paid_minor = u.p, settled = u.s, forgiven_minor = u.f
FROM unnest($1::text[], $2::bigint[], $3::boolean[], $4::bigint[]) AS u(n, p, s, f)
WHERE i.invoice_number = u.n;

-- name: upsert_contracts
-- A run of contracts and their billing currencies, as contract events say (the latest wins).
INSERT INTO contracts (contract, currency)
SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT (contract) DO UPDATE SET currency = EXCLUDED.currency;

-- name: insert_invoices
-- A run of issued invoices; returns the new ones (a repeat of one already known is not).
INSERT INTO invoices (invoice_number, contract, ss, due_on, amount_minor, currency)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::bigint[], $6::text[])
ON CONFLICT (invoice_number) DO NOTHING
RETURNING invoice_number;

-- name: contracts_with_credit
-- Those of contracts $1 with unspent credit, to pay their newly issued invoices with.
SELECT DISTINCT contract FROM credit_lots
WHERE contract = ANY($1::text[]) AND remaining_minor > 0;

-- Credit notes (``Payments.on_credit_note``).

-- name: invoice_to_credit
-- Invoice $1 as a credit note finds it, settled or not, locked.
-- What it asks, what is paid, whether it is settled and what its credit notes credited so far.
SELECT invoice_number, contract, ss, due_on, amount_minor, paid_minor, currency, settled,
       credited_minor
FROM invoices WHERE invoice_number = $1
FOR UPDATE;

-- name: paid_by
-- What each payment (directly or through its credit lot) has paid of invoice $1.
-- Net of what a credit note gave back, with its newest allocation's id: the latest gives back
-- first.
SELECT account, bank_tx_id, sum(amount_minor)::bigint AS amount_minor, max(id) AS last_id
FROM allocations
WHERE invoice_number = $1 AND NOT reversed
GROUP BY account, bank_tx_id
HAVING sum(amount_minor) > 0;

-- name: credit_invoice
-- Invoice $1 after a credit note: it asks $2, credited $3 in all, $4 paid, settled $5.
-- $6 is what the rounding tolerance forgave.
UPDATE invoices
SET amount_minor = $2, credited_minor = $3, paid_minor = $4, settled = $5, forgiven_minor = $6
WHERE invoice_number = $1;

-- name: unmatched_gauges
-- The unmatched queue per currency for /metrics: credits, their sum, the oldest's age.
-- The age is at $1, the worker's clock, in seconds.
SELECT currency, count(*) AS waiting, sum(amount_minor) AS amount_minor,
       extract(epoch FROM $1::timestamptz - min(received_at))::float8 AS oldest_seconds
FROM bank_transactions WHERE status = 'unmatched' AND amount_minor > 0
GROUP BY currency;

-- name: record_statement_imports
-- Statements imported ($1 account, $2 time, $3 file, $4 movements): the latest per account.
INSERT INTO statement_imports AS s (account, imported_at, file, movements)
SELECT DISTINCT ON (a) a, t, f, m
FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::int[]) AS u(a, t, f, m)
ORDER BY a, t DESC
ON CONFLICT (account) DO UPDATE
SET imported_at = EXCLUDED.imported_at, file = EXCLUDED.file, movements = EXCLUDED.movements
WHERE s.imported_at < EXCLUDED.imported_at;

-- name: statement_import_gauges
-- The last import per account for /metrics, in seconds since the epoch.
SELECT account, extract(epoch FROM imported_at)::float8 AS at FROM statement_imports;
