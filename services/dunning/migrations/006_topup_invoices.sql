-- A VoIP credit top-up's invoice (invoice.issued kind "topup"): kept, never dunned. Unpaid,
-- the customer only does not get the credit; no reminder, notice or suspension for it.
ALTER TABLE invoices ADD COLUMN topup boolean NOT NULL DEFAULT false;
