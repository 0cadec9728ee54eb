-- name: get_accesses
-- The contracts a run of requests names, locked in contract order (no two lockers wait on
-- each other).
SELECT contract, subscribers, state, reason, version
FROM access WHERE contract = ANY($1::text[]) ORDER BY contract FOR UPDATE;

-- name: set_accesses
UPDATE access a SET state = u.s, reason = u.r, version = u.v, effective_at = $5
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(c, s, r, v)
WHERE a.contract = u.c;

-- name: access_summary
SELECT contract, language, state FROM access WHERE contract = $1;

-- name: contract_by_address
-- The longest of the contracts' networks holding the address (loading refuses overlaps
-- between contracts; were there any, the lowest contract number of the longest wins).
SELECT contract FROM access_networks WHERE network >>= $1::inet
ORDER BY masklen(network) DESC, contract LIMIT 1;

-- name: replace_networks
-- The networks of the contracts $1 become exactly those of ($2, $3).
WITH new AS (SELECT * FROM unnest($2::text[], $3::cidr[]) AS u(contract, network)),
gone AS (
    DELETE FROM access_networks a
    WHERE a.contract = ANY($1::text[])
      AND NOT EXISTS (SELECT 1 FROM new WHERE new.contract = a.contract AND new.network = a.network)
)
INSERT INTO access_networks (contract, network) SELECT contract, network FROM new
ON CONFLICT DO NOTHING;

-- name: put_notices
-- One row per contract (the caller keeps each contract's last notice of the run).
INSERT INTO notices (contract, request_id, request, requested_at)
SELECT u.c, u.r, u.q::jsonb, $4
FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c, r, q)
ON CONFLICT (contract) DO UPDATE
SET request_id = EXCLUDED.request_id, request = EXCLUDED.request,
    requested_at = EXCLUDED.requested_at, promised_days = NULL;

-- name: get_notice
SELECT request_id, request, requested_at, promised_days FROM notices WHERE contract = $1;

-- name: record_promise
UPDATE notices SET promised_days = $2 WHERE contract = $1 AND promised_days IS NULL
RETURNING contract;

-- name: drop_notices
DELETE FROM notices WHERE contract = ANY($1::text[]);

-- name: record_ack
INSERT INTO acknowledgements (contract, request_id, acknowledged_at, address, user_agent)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (contract, request_id) DO NOTHING
RETURNING id;

-- name: snapshot
SELECT contract, subscribers, state, reason, version, effective_at
FROM access
WHERE ($1::text IS NULL OR state = $1) AND contract > $2
ORDER BY contract LIMIT $3;

-- name: record_applied
INSERT INTO gear_applied (gear, contract, version, state, applied_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (gear, contract) DO UPDATE
SET version = EXCLUDED.version, state = EXCLUDED.state, applied_at = EXCLUDED.applied_at
WHERE gear_applied.version < EXCLUDED.version;

-- name: drift
-- Contracts whose desired access a gear has not applied yet (every gear that ever reported).
SELECT g.gear, a.contract, a.state AS desired_state, a.version AS desired_version,
       p.state AS applied_state, p.version AS applied_version, a.effective_at
FROM (SELECT DISTINCT gear FROM gear_applied) g
CROSS JOIN access a
LEFT JOIN gear_applied p ON p.gear = g.gear AND p.contract = a.contract
WHERE a.version > 0 AND (p.version IS NULL OR p.version < a.version)
ORDER BY g.gear, a.effective_at, a.contract
LIMIT $1;

-- name: drift_counts
SELECT g.gear, count(a.contract) AS behind,
       coalesce(extract(epoch FROM $1 - min(a.effective_at)), 0)::float8 AS oldest_seconds
FROM (SELECT DISTINCT gear FROM gear_applied) g
CROSS JOIN access a
LEFT JOIN gear_applied p ON p.gear = g.gear AND p.contract = a.contract
WHERE a.version > 0 AND (p.version IS NULL OR p.version < a.version)
GROUP BY g.gear;

-- name: gears
SELECT DISTINCT gear FROM gear_applied ORDER BY gear;

-- name: get_subscribers
SELECT contract, subscribers FROM access WHERE contract = ANY($1::text[]) FOR UPDATE;

-- name: upsert_subscribers
INSERT INTO access (contract, customer_name, language, subscribers, effective_at)
SELECT u.c, u.n, u.l, u.s::jsonb, $5
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(c, n, l, s)
ON CONFLICT (contract) DO UPDATE
SET customer_name = EXCLUDED.customer_name, language = EXCLUDED.language,
    subscribers = EXCLUDED.subscribers;

-- name: bump_versions
UPDATE access SET version = version + 1, effective_at = $2 WHERE contract = ANY($1::text[])
RETURNING contract, version, subscribers, state, reason;
