-- A sender leases the delivery it is about to send, for a minute of real time, in a
-- statement committed before the send: while it waits for the database to record the
-- outcome (PostgreSQL restarting), no other sender claims the row and sends it again.
ALTER TABLE deliveries ADD COLUMN leased_until timestamptz;
