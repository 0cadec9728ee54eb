-- Invoices and credit notes as documents (issue 29): what each says is stored as issued,
-- so its PDF and ISDOC are made again byte for byte from these rows alone
-- (services/invoicing/stored.py reads them back into a documents.Document).

-- A contract's billing terms (services, whether its prices include VAT) and the customer
-- as documents name it (address, IČO, DIČ, VAT id); NULL terms: its monthly price is one
-- tariff service (services/invoicing/billed.py, legacy_tariff).
ALTER TABLE contracts ADD COLUMN terms jsonb, ADD COLUMN customer jsonb;

-- A contract as a billing run reads it: its terms and customer as text, passed on as they
-- are (the run makes one bill per kind of terms, services/invoicing/bills.py).
CREATE VIEW contract_billing AS
SELECT contract, active, monthly_fee_minor, currency, due_kind, due_value, terms::text AS terms,
       data ->> 'country' AS country, data ->> 'language' AS language,
       customer ->> 'vat_id' AS vat_id,
       COALESCE(customer, jsonb_build_object('name', data ->> 'customer_name', 'address', NULL))::text
           AS customer
FROM contracts;

-- One-off items (goods, an installation, a call-out) waiting for the contract's next
-- invoice, or billed at once on one of their own; billed_on is the invoice that carries it.
CREATE TABLE one_off_items (
    id           bigserial PRIMARY KEY,
    contract     text        NOT NULL,
    key          text        NOT NULL,   -- names it in its contract: a file loaded again adds none
    item         jsonb       NOT NULL,   -- services/invoicing/billed.py OneOff
    added_at     timestamptz NOT NULL,
    added_by     text        NOT NULL,
    billed_on    text,
    UNIQUE (contract, key)
);
CREATE INDEX one_off_items_waiting ON one_off_items (contract) WHERE billed_on IS NULL;

-- The supplier as configured when a document was issued, one row per identity (a run of
-- a million invoices names one): a document's supplier is the one of its issue date.
CREATE TABLE suppliers (
    id   text PRIMARY KEY,  -- sha256 of data as written
    data jsonb NOT NULL
);

-- An invoice's document: its lines and VAT recapitulation (the JSON of invoice.issued's
-- ``lines`` and ``vat``), the parties as issued, the tax point, the language, the VAT
-- treatment and its legal notes. ``no_document`` says why an invoice has none (issued
-- before this migration; a foreign currency or a VAT treatment not supported yet).
-- No foreign key to suppliers: checked per row, it would slow a run's COPY (004).
ALTER TABLE invoices
    ADD COLUMN kind               text NOT NULL DEFAULT 'periodic'
                                  CHECK (kind IN ('periodic', 'one_off')),
    ADD COLUMN language           text,
    ADD COLUMN tax_point_on       date,
    ADD COLUMN treatment          text,
    ADD COLUMN prices_include_vat boolean,
    ADD COLUMN supplier           text,
    ADD COLUMN customer           jsonb,
    ADD COLUMN lines              jsonb,
    ADD COLUMN recap              jsonb,
    ADD COLUMN notes              jsonb,
    ADD COLUMN no_document        text,
    -- when the document reached the customer: filled by delivery (issue 29 item 5)
    ADD COLUMN delivered_at       timestamptz;
-- the invoices of before have no document, and say so (before the check that asks it)
UPDATE invoices SET no_document = 'issued before invoices carried lines (migration 007)';
ALTER TABLE invoices
    ADD CONSTRAINT invoices_document CHECK ((lines IS NULL) <> (no_document IS NULL));

-- A one-off invoice shares its month with the periodic one: one periodic invoice per
-- contract and period, as before.
ALTER TABLE invoices DROP CONSTRAINT invoices_contract_period_key;
CREATE UNIQUE INDEX invoices_periodic ON invoices (contract, period) WHERE kind = 'periodic';

-- Credit notes: each credits lines of one invoice (lines carry original_line), with the
-- reason; the rest of the document (parties, language, treatment) is its invoice's.
CREATE TABLE credit_notes (
    number         text PRIMARY KEY,
    invoice_number text        NOT NULL REFERENCES invoices,
    contract       text        NOT NULL,
    issued_on      date        NOT NULL,
    reason         text        NOT NULL CHECK (reason <> ''),
    lines          jsonb       NOT NULL,
    recap          jsonb       NOT NULL,
    amount_minor   bigint      NOT NULL CHECK (amount_minor > 0),  -- credited, VAT included
    currency       char(3)     NOT NULL,
    created_at     timestamptz NOT NULL,
    created_by     text        NOT NULL,
    delivered_at   timestamptz
);
CREATE INDEX credit_notes_invoice ON credit_notes (invoice_number);

-- The credit notes' own gapless yearly series (D + the digits of an invoice number).
CREATE TABLE credit_note_sequences (
    year integer PRIMARY KEY,
    last integer NOT NULL
);

-- What delivery has still to send: every document issued and not yet delivered.
CREATE VIEW undelivered_documents AS
SELECT 'invoice' AS kind, invoice_number AS number, contract, issued_on,
       amount_minor, currency
FROM invoices WHERE delivered_at IS NULL AND lines IS NOT NULL
UNION ALL
SELECT 'credit_note', number, contract, issued_on, amount_minor, currency
FROM credit_notes WHERE delivered_at IS NULL;
