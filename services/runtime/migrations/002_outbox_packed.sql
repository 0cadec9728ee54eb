-- A unit of work that emits many events at once (a billing run's chunk of 20,000
-- invoices, a dunning sweep, a statement import) writes each run of consecutive events of
-- one topic, type and headers as rows of up to 1,000: `records` of them packed in `value`
-- (see outbox.pack), `key` NULL. NULL: one event, as before. Writing a million events and
-- taking them 5,000 a round cost PostgreSQL 6.0-6.4 s of CPU a row an event (a heap tuple,
-- an index entry and a jsonb value each, written, then deleted), 2.0-2.1 s packed.
ALTER TABLE outbox ADD COLUMN records integer CHECK (records > 0);
-- Packed values are up to a megabyte: stored out of line as they are, not compressed by
-- PostgreSQL on the way in (pglz would cost more CPU than the rows it saves).
ALTER TABLE outbox ALTER COLUMN value SET STORAGE EXTERNAL;
