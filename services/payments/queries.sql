-- name: upsert_contract
INSERT INTO contracts (contract, currency) VALUES ($1, $2)
ON CONFLICT (contract) DO UPDATE SET currency = EXCLUDED.currency;

-- name: get_contract
SELECT contract, currency FROM contracts WHERE contract = $1;

-- name: insert_invoice
INSERT INTO invoices (invoice_number, contract, ss, due_on, amount_minor, currency)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (invoice_number) DO NOTHING
RETURNING invoice_number;

-- name: open_invoices
SELECT invoice_number, contract, ss, due_on, amount_minor, paid_minor, currency
FROM invoices WHERE contract = $1 AND NOT settled
ORDER BY due_on, invoice_number
FOR UPDATE;

-- name: open_invoice_by_ss
SELECT invoice_number, contract, ss, due_on, amount_minor, paid_minor, currency
FROM invoices WHERE ss = $1 AND NOT settled
FOR UPDATE;

-- name: get_invoice
SELECT invoice_number, contract, ss, due_on, amount_minor, paid_minor, currency
FROM invoices WHERE invoice_number = $1
FOR UPDATE;

-- name: update_invoice_paid
UPDATE invoices SET paid_minor = $2, settled = $3, forgiven_minor = $4
WHERE invoice_number = $1;

-- name: insert_bank_tx
INSERT INTO bank_transactions (account, bank_tx_id, event_id, booked_on, amount_minor, currency,
                               vs, ss, data, contract, status, reason_code, reason, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (account, bank_tx_id) DO NOTHING
RETURNING bank_tx_id;

-- name: insert_allocation
INSERT INTO allocations (account, bank_tx_id, invoice_number, amount_minor, rule)
VALUES ($1, $2, $3, $4, $5);

-- name: get_credit
SELECT balance_minor FROM credits WHERE contract = $1 FOR UPDATE;

-- name: set_credit
INSERT INTO credits (contract, balance_minor) VALUES ($1, $2)
ON CONFLICT (contract) DO UPDATE SET balance_minor = EXCLUDED.balance_minor;

-- name: list_unmatched
SELECT account, bank_tx_id, booked_on, amount_minor, currency, vs, ss, reason_code, reason
FROM bank_transactions WHERE status = 'unmatched' ORDER BY received_at;
