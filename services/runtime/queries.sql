-- The runtime's statements, run in the schema of the service whose worker or command runs
-- them (its search_path), except where a query names a schema itself. Loaded by each runtime
-- module with ``sql.load(__file__)``; the tables are in services/runtime/migrations/.

-- Migrations and sessions (db.py) ------------------------------------------------------------

-- name: lock_migrations
-- One process migrates at a time, any service: the others wait here, then find nothing to do.
SELECT pg_advisory_lock(hashtext('billing-migrate'));

-- name: unlock_migrations
-- Release lock_migrations (a session lock: it outlives the migrations' transactions).
SELECT pg_advisory_unlock(hashtext('billing-migrate'));

-- name: create_schema_migrations
-- The service schema's record of applied migration files, created on its first migration.
CREATE TABLE IF NOT EXISTS schema_migrations (
    name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());

-- name: applied_migrations
-- The migration files (``<folder>/<file>``) already applied to this schema.
SELECT name FROM schema_migrations;

-- name: record_migration
-- A migration file applied, in the transaction that applied it.
INSERT INTO schema_migrations (name) VALUES ($1);

-- name: use_schema
-- Make schema $1 the session's search_path (quoted here, never formatted into the SQL).
SELECT set_config('search_path', quote_ident($1), false);

-- name: try_schema_lock
-- The transaction's advisory lock "<schema>.$1" if free: one instance does that work, others skip.
SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.' || $1));

-- name: database_exists
-- Whether the server has database $1 (asked on the server's postgres database).
SELECT 1 FROM pg_database WHERE datname = $1;

-- name: ping
-- The health check: PostgreSQL answers on a connection of the worker's pool.
SELECT 1;

-- The shared test clock (clock.py) ---------------------------------------------------------

-- name: create_clock
-- The one-row offset of the shared test clock, created by every service's migration.
CREATE SCHEMA IF NOT EXISTS billing_clock;
CREATE TABLE IF NOT EXISTS billing_clock.offset (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    offset_seconds double precision NOT NULL
);

-- name: clock_offset
-- Seconds the shared test clock is ahead of real time (NULL: never set, no offset).
SELECT offset_seconds FROM billing_clock.offset;

-- name: store_clock_offset
-- Set the shared test clock's offset to $1 seconds (the table holds one row at most).
INSERT INTO billing_clock.offset (singleton, offset_seconds) VALUES (true, $1)
ON CONFLICT (singleton) DO UPDATE SET offset_seconds = EXCLUDED.offset_seconds;

-- name: notify_clock
-- Tell every worker listening on channel $1 that the clock moved; sent when the change commits.
SELECT pg_notify($1, '');

-- The outbox (unit.py writes, outbox.py relays) ----------------------------------------------

-- name: write_outbox
-- A unit's events in emit order, and the relay's wake-up sent on commit, in one round trip.
-- One array a column ($1 topics, $2 keys, $3 values, $4 headers, $5 event types); ORDER BY
-- the ordinality so ids grow in emit order, which is the order the relay publishes.
WITH written AS (
    INSERT INTO outbox (topic, key, value, headers, event_type)
    SELECT t, k, v, h::jsonb, ty
    FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[], $5::text[])
         WITH ORDINALITY AS u(t, k, v, h, ty, n)
    ORDER BY n)
SELECT pg_notify(current_schema() || '_outbox', '');

-- name: wake_relay
-- The relay's wake-up after a COPY into the outbox (a COPY cannot carry it); sent on commit.
SELECT pg_notify(current_schema() || '_outbox', '');

-- name: take_outbox
-- A relay round's rows, oldest first, deleted and returned: a primary-key probe per id.
-- Whatever the outbox's size or statistics (tests/integration/test_query_plans.py). Written
-- as `id IN (subquery)`, the planner may hash the ids and scan the whole outbox instead: it
-- did on an analyzed outbox of 200,000 short rows. A round takes rows while fewer than $1
-- events come before them, so a packed row counts as its events (and the first row is
-- always taken, however many it packs).
DELETE FROM outbox WHERE id = ANY(ARRAY(
    SELECT id FROM (
        SELECT id, sum(coalesce(records, 1)) OVER (ORDER BY id) - coalesce(records, 1)
               AS before
        FROM (SELECT id, records FROM outbox ORDER BY id LIMIT $1) head) counted
    WHERE before < $1))
RETURNING id, topic, key, value, headers::text AS headers, event_type, records;

-- name: outbox_backlog
-- Rows left after id $1, estimated from the primary key's end: O(1), where count(*) scans.
SELECT coalesce(max(id) - $1, 0) FROM outbox;

-- The inbox and dead letters (consumer.py) ---------------------------------------------------

-- name: claim_inbox
-- Record event ids $2 as applied by consumer $1; returns those not seen before (the new ones).
INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::uuid[])
ON CONFLICT DO NOTHING RETURNING event_id;

-- name: insert_dead_letter
-- A record no handler could apply, with why, kept beside its copy sent to the .dlq topic.
INSERT INTO dead_letters (topic, partition, "offset", key, value, reason)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: prune_inbox
-- At most $2 inbox rows applied over $1 days ago, deleted by row address after one scan.
-- A scan: no index on processed_at, which would cost every insert to save one scan an hour.
DELETE FROM inbox WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM inbox
    WHERE processed_at < now() - make_interval(days => $1) LIMIT $2));

-- Durable timers (timers.py) -----------------------------------------------------------------

-- name: clear_timers
-- Drop the pending timers of keys $1 (a key with no due time any more, or a sweep's claimed).
DELETE FROM timers WHERE key = ANY($1::text[]);

-- name: clear_timer
-- Drop the pending timer of key $1, as a sweep fires it one by one.
DELETE FROM timers WHERE key = $1;

-- name: set_timers
-- Keys $1 due at $2 (one array a column): each key has one pending timer, the latest set.
INSERT INTO timers (key, due_at)
SELECT * FROM unnest($1::text[], $2::timestamptz[])
ON CONFLICT (key) DO UPDATE SET due_at = EXCLUDED.due_at;

-- name: claim_due_timers
-- The first $2 timers due by $1, locked; SKIP LOCKED lets other instances claim the rest.
SELECT key FROM timers WHERE due_at <= $1 ORDER BY due_at LIMIT $2
FOR UPDATE SKIP LOCKED;

-- The operators' audit trail (audit.py; the table is migrations/003_operator_actions.sql) --

-- name: record_action
-- One operator action into the trail of the schema whose state it changed, in that transaction.
INSERT INTO operator_actions (at, operator, action, contract, details, reason)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: schemas_with_trail
-- The schemas among $1 that have the trail (a service not migrated yet has none), in $1's order.
SELECT s FROM unnest($1::text[]) WITH ORDINALITY AS u(s, n)
WHERE to_regclass(quote_ident(s) || '.operator_actions') IS NOT NULL
ORDER BY n;

-- name: trail
-- One schema's latest $2 actions on contract $1 (NULL: all), oldest first.
SELECT * FROM (
    SELECT id, at, operator, action, contract, details, reason FROM operator_actions
    WHERE $1::text IS NULL OR contract = $1
    ORDER BY id DESC LIMIT $2
) latest ORDER BY id;

-- Gauges every worker exports (metrics.py) -------------------------------------------------

-- name: outbox_oldest
-- Seconds the oldest outbox row has waited (0: none), by the primary key's start: O(1).
SELECT coalesce(extract(epoch FROM now() - first.created_at), 0)::float8
FROM (SELECT (SELECT created_at FROM outbox ORDER BY id LIMIT 1) AS created_at) first;

-- name: dead_letters_by_topic
-- The records kept as dead letters, per topic they came from, for /metrics.
SELECT topic, count(*) AS n FROM dead_letters GROUP BY topic;
