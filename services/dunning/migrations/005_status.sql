-- The explanation last published to the customer (``dunning.status``), by its hash
-- (``domain.status_key``): a new one is published only when it differs. NULL: nothing to
-- explain (active, nothing overdue), or never published.
ALTER TABLE state ADD COLUMN status_key text;
