-- The dev stack's statements: quiescence (quiesce.py: `billing clock advance` and the tests
-- wait for it), run in each service's schema in turn (its search_path for the transaction).

-- name: use_schema_in_transaction
-- Schema $1 as search_path until the transaction ends, for a connection that visits several.
SELECT set_config('search_path', quote_ident($1), true);

-- name: outbox_rows
-- Events the service whose schema is the search_path has yet to publish.
SELECT count(*) FROM outbox;

-- name: due_timer_count
-- Timers of the service whose schema is the search_path due by $1 and not yet fired.
SELECT count(*) FROM timers WHERE due_at <= $1;
