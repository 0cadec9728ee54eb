-- name: upsert_contract
-- A run of contracts as loaded, their billing terms in columns (the latest wins).
-- No contract twice in one run: Unit.stage_row starts another execution there.
-- $1-$10 are the fields of ``ContractRow`` (services/invoicing/service.py), in its order.
INSERT INTO contracts (contract, data, active, monthly_fee_minor, currency, due_kind, due_value,
                       updated_at, terms, customer)
SELECT u.c, u.d::jsonb, u.a, u.f, u.cu, u.k, u.v, u.t, u.te::jsonb, u.cs::jsonb
FROM unnest($1::text[], $2::text[], $3::boolean[], $4::bigint[], $5::text[], $6::text[],
            $7::integer[], $8::timestamptz[], $9::text[], $10::text[])
     AS u(c, d, a, f, cu, k, v, t, te, cs)
ON CONFLICT (contract) DO UPDATE
SET data = EXCLUDED.data, active = EXCLUDED.active,
    monthly_fee_minor = EXCLUDED.monthly_fee_minor, currency = EXCLUDED.currency,
    due_kind = EXCLUDED.due_kind, due_value = EXCLUDED.due_value, updated_at = EXCLUDED.updated_at,
    terms = EXCLUDED.terms, customer = EXCLUDED.customer;

-- name: add_file_one_off
-- A one-off item of a contracts file, waiting for the next invoice; loaded again: skipped.
INSERT INTO one_off_items (contract, key, item, added_at, added_by)
VALUES ($1, $2, $3::jsonb, $4, $5)
ON CONFLICT (contract, key) DO NOTHING;

-- name: billable_contracts
-- One chunk of a billing run: the $2 contracts after $1, in contract order.
-- Byte order (COLLATE "C"), as the domain sorts, so chunks neither skip nor repeat.
SELECT * FROM contract_billing
WHERE contract COLLATE "C" > $1
ORDER BY contract COLLATE "C"
LIMIT $2;

-- name: invoiced_in_period
-- The contracts among $2 already invoiced for period $1: a run repeated skips them.
SELECT contract FROM invoices
WHERE period = $1 AND contract = ANY($2::text[]) AND kind = 'periodic';

-- name: unbilled_one_offs
-- The one-off items waiting for contracts $1's next invoice, in the order they were added.
-- Locked as read, as unbilled_fees and for the same reason.
SELECT contract, array_agg(id ORDER BY id) AS ids, array_agg(item::text ORDER BY id) AS items
FROM (SELECT contract, id, item FROM one_off_items
      WHERE billed_on IS NULL AND contract = ANY($1::text[])
      FOR UPDATE) waiting
GROUP BY contract;

-- name: mark_one_offs_billed
-- Exactly the one-off items an invoice carries ($1 ids, $2 invoice numbers), marked billed.
UPDATE one_off_items o SET billed_on = i.invoice_number
FROM unnest($1::bigint[], $2::text[]) AS i(id, invoice_number)
WHERE o.id = i.id AND o.billed_on IS NULL;

-- name: add_supplier
-- The supplier of a run or a document as configured, once per identity.
INSERT INTO suppliers (id, data) VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING;

-- name: lock_sequence
-- Year $1's last invoice number, its row locked: runs of one year number one at a time.
INSERT INTO invoice_sequences (year, last) VALUES ($1, 0)
ON CONFLICT (year) DO UPDATE SET last = invoice_sequences.last
RETURNING last;

-- name: hold_run_lock
-- Hold the billing-run lock, shared, from a run's start to its end (a session lock).
-- A contract is deleted or renumbered only once no run is in flight (migration 005
-- takes it exclusively).
SELECT pg_advisory_lock_shared(7091318301304122880);

-- name: hold_run_lock_in_transaction
-- The billing-run lock for a run inside a caller's transaction: released when it ends.
-- The same, for a run inside a caller's transaction: released when it ends.
SELECT pg_advisory_xact_lock_shared(7091318301304122880);

-- name: release_run_lock
-- Release hold_run_lock at the end of a run.
SELECT pg_advisory_unlock_shared(7091318301304122880);

-- name: sequence_now
-- Year $1's last invoice number, unlocked: where a pipelined run starts numbering from.
-- Each chunk checks it under lock_sequence.
SELECT last FROM invoice_sequences WHERE year = $1;

-- name: set_sequence
-- Year $1's last invoice number is now $2 (under lock_sequence, in the chunk's transaction).
UPDATE invoice_sequences SET last = $2 WHERE year = $1;

-- name: record_fee
-- A late fee dunning charged, waiting for the next invoice; a repeated charge is skipped.
INSERT INTO pending_fees (contract, request_id, late_invoice, amount_minor, currency, charged_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING;

-- name: unbilled_fees
-- The fees waiting for contracts $1 in their billing currency, summed, locked as read.
-- Fees in another currency stay for an operator. Those summed, and no fee charged since,
-- are marked billed (mark_fees_billed). Locked as read: inside a run's transaction, no
-- other run (of another year: another sequence row) can bill them before this one does;
-- one that is billing them now is waited for, and what it billed is left out.
SELECT contract, sum(amount_minor)::bigint AS amount_minor, array_agg(request_id) AS request_ids
FROM (SELECT f.contract, f.amount_minor, f.request_id
      FROM pending_fees f JOIN contracts c USING (contract)
      WHERE f.billed_on IS NULL AND f.currency = c.currency AND f.contract = ANY($1::text[])
      FOR UPDATE OF f) waiting
GROUP BY contract;

-- name: mark_fees_billed
-- Exactly the fees an invoice summed, marked billed by it: one row per fee.
-- Exactly the fees an invoice summed: one row per fee.
UPDATE pending_fees f SET billed_on = i.invoice_number
FROM unnest($1::text[], $2::text[], $3::text[]) AS i(contract, request_id, invoice_number)
WHERE f.contract = i.contract AND f.request_id = i.request_id AND f.billed_on IS NULL;

-- name: record_run
-- A billing run done: its period, issue date, invoices issued and when it ran.
INSERT INTO billing_runs (period, issued_on, issued, run_at) VALUES ($1, $2, $3, $4);

-- name: mark_paid
-- A run of settled invoices marked paid, with the amount and the day.
-- Rows staged one per event (``Unit.stage_row``), written by one statement.
UPDATE invoices i SET status = 'paid', paid_minor = u.p, settled_on = u.d
FROM unnest($1::text[], $2::bigint[], $3::date[]) AS u(n, p, d)
WHERE i.invoice_number = u.n;

-- name: mark_partially_paid
-- A run of partly paid invoices' paid amounts (a paid invoice stays paid).
UPDATE invoices i SET status = 'partially_paid', paid_minor = u.p
FROM unnest($1::text[], $2::bigint[]) AS u(n, p)
WHERE i.invoice_number = u.n AND i.status <> 'paid';

-- name: mark_reopened
-- Invoice $1 open again after a payment was taken back: $2 still paid of it.
UPDATE invoices
SET status = CASE WHEN $2 > 0 THEN 'partially_paid' ELSE 'issued' END, paid_minor = $2,
    settled_on = NULL
WHERE invoice_number = $1;

-- name: list_invoices
-- The invoices of contract $1 (NULL: all), in number order, for an operator.
SELECT invoice_number, contract, vs, ss, period, issued_on, due_on, amount_minor, currency,
       status, paid_minor
FROM invoices WHERE ($1::text IS NULL OR contract = $1) ORDER BY invoice_number;

-- name: get_contracts
-- The stored contracts among $1, to tell a load's new or changed ones from repeats.
SELECT contract, data, terms, customer FROM contracts WHERE contract = ANY($1::text[]);

-- name: networks_incoming
-- A contracts load's networks, kept until its end (services/invoicing/address_overlaps.py).
CREATE TEMPORARY TABLE incoming_contracts (contract text PRIMARY KEY) ON COMMIT DROP;
-- Written by COPY (the network as text, parsed by PostgreSQL: asyncpg would parse each
-- in Python again).
CREATE TEMPORARY TABLE incoming_networks (
    contract text NOT NULL,
    given    text NOT NULL,
    entry    text NOT NULL,  -- the subscriber field and index: ipv4_prefixes[0]
    place    text NOT NULL,  -- the file and record
    network  cidr GENERATED ALWAYS AS (given::cidr) STORED
) ON COMMIT DROP;

-- name: networks_lock
-- One load at a time checks and replaces networks: the second sees what the first stored.
LOCK TABLE contract_networks IN SHARE ROW EXCLUSIVE MODE;

-- name: networks_inside_another
-- Every network inside another contract's, in one sort instead of an index probe each.
-- A GiST probe on inet costs about 0.15 ms: half a minute for 200,000 networks. Two
-- networks overlap only when one holds the other, and a holder sorts before what it holds
-- (same first address: the shorter prefix first). So after each contract's networks inside
-- another of its own are set aside (``maximal``: what is left of a contract is disjoint),
-- a network whose first address is not past the last address of every network sorted
-- before it lies inside another contract's. Which one (and where it is) networks_holding
-- says for the few found.
WITH s AS (
    SELECT contract, network, entry, place FROM incoming_networks
    UNION ALL
    SELECT s.contract, s.network, NULL, NULL FROM contract_networks s
    WHERE NOT EXISTS (SELECT 1 FROM incoming_contracts i WHERE i.contract = s.contract)
),
bounds AS (
    SELECT *, host(network)::inet AS first, host(broadcast(network))::inet AS last FROM s
),
own AS (
    SELECT *, max(last) OVER (
        PARTITION BY contract, family(network) ORDER BY first, masklen(network)
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS own_before
    FROM bounds
),
maximal AS (
    SELECT *, max(last) OVER (
        PARTITION BY family(network) ORDER BY first, masklen(network)
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS before
    FROM own WHERE own_before IS NULL OR own_before < first
)
SELECT contract, network::text AS network, entry, place FROM maximal WHERE before >= first
ORDER BY place NULLS LAST, entry, contract, network;

-- name: networks_holding
-- The other contracts' networks that overlap $1 (not contract $2), file's and stored.
-- The file's by a scan (only when networks_inside_another found some); those stored for
-- contracts the file does not replace by the btree on network: $1's supernets (one per
-- prefix length) and the range of networks inside it (a prefix sorts just before what it
-- holds, and the last address of it, as a /32 or /128, last).
SELECT contract, network::text AS network, entry, place
FROM incoming_networks WHERE network && $1::cidr AND contract <> $2
UNION ALL
SELECT s.contract, s.network::text, NULL, NULL FROM contract_networks s
WHERE (
        s.network = ANY(ARRAY(
            SELECT network(set_masklen($1::cidr, k))::cidr
            FROM generate_series(0, masklen($1::cidr)) AS k
        ))
        OR (s.network >= $1::cidr AND s.network <= set_masklen(
                broadcast($1::cidr), CASE family($1::cidr) WHEN 4 THEN 32 ELSE 128 END
            )::cidr AND s.network <<= $1::cidr)
    )
  AND s.contract <> $2
  AND NOT EXISTS (SELECT 1 FROM incoming_contracts i WHERE i.contract = s.contract)
ORDER BY place NULLS LAST, entry, contract, network;

-- name: networks_replace
-- The networks of the contracts loaded become the file's.
-- Two statements: the insert must see the deletion (an address a contract keeps).
DELETE FROM contract_networks s USING incoming_contracts i WHERE s.contract = i.contract;
INSERT INTO contract_networks (contract, network)
SELECT contract, network FROM incoming_networks
ON CONFLICT DO NOTHING;

-- name: get_invoice
-- Invoice $1 with its document's columns and its supplier as issued.
SELECT i.*, s.data AS supplier_data
FROM invoices i LEFT JOIN suppliers s ON s.id = i.supplier
WHERE i.invoice_number = $1;

-- name: lock_invoice
-- Invoice $1 for a credit note, its row locked: two notes on one invoice credit in turn.
SELECT i.*, s.data AS supplier_data
FROM invoices i LEFT JOIN suppliers s ON s.id = i.supplier
WHERE i.invoice_number = $1
FOR UPDATE OF i;

-- name: credit_notes_of
-- The credit notes of invoice $1, in number order.
SELECT * FROM credit_notes WHERE invoice_number = $1 ORDER BY number;

-- name: get_credit_note
-- Credit note $1.
SELECT * FROM credit_notes WHERE number = $1;

-- name: lock_credit_sequence
-- Year $1's last credit-note number, its row locked: notes of one year number one at a time.
INSERT INTO credit_note_sequences (year, last) VALUES ($1, 0)
ON CONFLICT (year) DO UPDATE SET last = credit_note_sequences.last
RETURNING last;

-- name: set_credit_sequence
-- Year $1's last credit-note number is now $2 (under lock_credit_sequence, with the note).
UPDATE credit_note_sequences SET last = $2 WHERE year = $1;

-- name: insert_credit_note
-- A credit note as issued ($1 number ... $11 who issued it).
INSERT INTO credit_notes (number, invoice_number, contract, issued_on, reason, lines, recap,
                          amount_minor, currency, created_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11);

-- name: billable_contract
-- Contract $1 as a billing run reads it (billable_contracts), for an invoice of its own.
SELECT * FROM contract_billing WHERE contract = $1;

-- name: add_one_off
-- A one-off item an operator added; its id.
-- $1 contract, $2 key, $3 item, $4 when, $5 who, $6 the invoice that carries it at once
-- (NULL: the next invoice).
INSERT INTO one_off_items (contract, key, item, added_at, added_by, billed_on)
VALUES ($1, $2, $3::jsonb, $4, $5, $6)
RETURNING id;

-- name: undelivered
-- Every document issued and not yet delivered, oldest first (the view of migration 007).
-- archived_at: when its PDF and ISDOC went to notify (NULL: not made yet).
SELECT u.kind, u.number, u.contract, u.issued_on, u.amount_minor, u.currency, a.archived_at
FROM undelivered_documents u LEFT JOIN document_archive a ON a.number = u.number
ORDER BY u.issued_on, u.number;

-- name: to_archive
-- Up to $1 documents to make into PDF and ISDOC for delivery next, but those of $2.
-- Not delivered and not archived yet, oldest first; $2 are those refused (a customer
-- without an address).
SELECT u.kind, u.number, u.contract, u.issued_on, u.amount_minor, u.currency
FROM undelivered_documents u
WHERE NOT EXISTS (SELECT 1 FROM document_archive a WHERE a.number = u.number)
  AND u.number <> ALL($2::text[])
ORDER BY u.issued_on, u.number
LIMIT $1;

-- name: archive_document
-- Document $1's PDF and ISDOC as sent, with their hashes; its number when archived here.
-- Nothing when another worker archived it first (it announces it, this one does not).
-- $2 kind, $3 contract, $4 pdf, $5 its sha256, $6 isdoc, $7 its sha256, $8 when.
INSERT INTO document_archive (number, kind, contract, pdf, pdf_sha256, isdoc, isdoc_sha256,
                              archived_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (number) DO NOTHING
RETURNING number;

-- name: mark_invoice_delivered
-- Invoice $1 reached a contact at $2 (the first delivery counts).
UPDATE invoices SET delivered_at = $2 WHERE invoice_number = $1 AND delivered_at IS NULL;

-- name: mark_credit_note_delivered
-- Credit note $1 reached a contact at $2 (the first delivery counts).
UPDATE credit_notes SET delivered_at = $2 WHERE number = $1 AND delivered_at IS NULL;

-- name: document_gauges
-- Undelivered documents per stage at $1, how many and the oldest's age (for /metrics).
-- to_make: not archived (no PDF and ISDOC yet), its age from its issue day (UTC midnight);
-- to_deliver: archived and announced, no notification.sent yet, its age from its archiving.
SELECT CASE WHEN a.number IS NULL THEN 'to_make' ELSE 'to_deliver' END AS label,
       count(*) AS n,
       greatest(extract(epoch FROM $1::timestamptz - min(coalesce(
           a.archived_at, u.issued_on::timestamp AT TIME ZONE 'UTC'))), 0)::float8 AS oldest
FROM undelivered_documents u LEFT JOIN document_archive a ON a.number = u.number
GROUP BY 1;

-- name: add_postpaid_calls
-- Rated postpaid calls; a call id the contract has already is kept as it was.
INSERT INTO voip_calls (contract, call_id, started_at, seconds, destination, price_minor,
                        currency, import_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::text[],
                     $6::bigint[], $7::text[], $8::text[])
ON CONFLICT (contract, call_id) DO NOTHING;

-- name: unbilled_calls
-- The postpaid calls of contracts $1 that started before $2, waiting for an invoice.
-- Per month of time zone $3 and destination ($2: the period's start); locked as read, as
-- unbilled_one_offs and for the same reason.
SELECT contract, month, destination, currency, count(*) AS calls,
       sum(seconds)::bigint AS seconds, sum(price_minor)::bigint AS price_minor,
       array_agg(id ORDER BY id) AS ids
FROM (SELECT id, contract, to_char(started_at AT TIME ZONE $3, 'YYYY-MM') AS month,
             destination, currency, seconds, price_minor
      FROM voip_calls
      WHERE billed_on IS NULL AND contract = ANY($1::text[]) AND started_at < $2
      FOR UPDATE) waiting
GROUP BY contract, month, destination, currency
ORDER BY contract, month, destination;

-- name: mark_calls_billed
-- Exactly the calls an invoice carries ($1 ids, $2 invoice numbers), marked billed.
UPDATE voip_calls c SET billed_on = i.invoice_number
FROM unnest($1::bigint[], $2::text[]) AS i(id, invoice_number)
WHERE c.id = i.id AND c.billed_on IS NULL;
