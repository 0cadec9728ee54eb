-- SMS quiet hours need the customer's country (time zone); HTML e-mail needs its part;
-- a delivery that fails for good goes to the DLQ with the request that caused it.
ALTER TABLE contacts ADD COLUMN country text NOT NULL DEFAULT 'CZ';
ALTER TABLE deliveries
    ADD COLUMN html    text,
    ADD COLUMN request bytea;
