-- The operators' audit trail (services/runtime/migrations/003_operator_actions.sql), in the
-- schema of the service whose state the action changed.

-- name: record_action
INSERT INTO operator_actions (at, operator, action, contract, details, reason)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: schemas_with_trail
-- The schemas among $1 that have the trail (a service not migrated yet has none).
SELECT s FROM unnest($1::text[]) WITH ORDINALITY AS u(s, n)
WHERE to_regclass(quote_ident(s) || '.operator_actions') IS NOT NULL
ORDER BY n;

-- name: use_schema
SELECT set_config('search_path', quote_ident($1), false);

-- name: trail
-- One schema's actions, on contract $1 (NULL: all), the latest $2.
SELECT * FROM (
    SELECT id, at, operator, action, contract, details, reason FROM operator_actions
    WHERE $1::text IS NULL OR contract = $1
    ORDER BY id DESC LIMIT $2
) latest ORDER BY id;
