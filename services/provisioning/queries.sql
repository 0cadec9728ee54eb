-- name: get_accesses
-- The access of the contracts a run of requests names, locked in contract order.
-- In contract order so that no two lockers wait on each other.
SELECT contract, subscribers, state, reason, version
FROM access WHERE contract = ANY($1::text[]) ORDER BY contract FOR UPDATE;

-- name: set_accesses
-- A run's new access states, reasons and versions, all effective at $5 (one row a contract).
UPDATE access a SET state = u.s, reason = u.r, version = u.v, effective_at = $5
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(c, s, r, v)
WHERE a.contract = u.c;

-- name: access_summary
-- Contract $1's language and access state, for its notice page.
SELECT contract, language, state FROM access WHERE contract = $1;

-- name: contract_by_address
-- The contract whose network holds address $1: the longest prefix, for the notice page.
-- Loading refuses overlaps between contracts; were there any, the lowest contract number of
-- the longest wins.
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
-- The notices a run requested, at $4, one row per contract; a new notice resets its promise.
-- The caller keeps each contract's last notice of the run: one row a contract.
INSERT INTO notices (contract, request_id, request, requested_at)
SELECT u.c, u.r, u.q::jsonb, $4
FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c, r, q)
ON CONFLICT (contract) DO UPDATE
SET request_id = EXCLUDED.request_id, request = EXCLUDED.request,
    requested_at = EXCLUDED.requested_at, promised_days = NULL;

-- name: get_notice
-- Contract $1's notice on screen, if any: what it asks and whether a promise was made.
SELECT request_id, request, requested_at, promised_days FROM notices WHERE contract = $1;

-- name: record_promise
-- The customer of contract $1 promised to pay within $2 days: one promise per notice.
UPDATE notices SET promised_days = $2 WHERE contract = $1 AND promised_days IS NULL
RETURNING contract;

-- name: drop_notices
-- Take contracts $1's notices off the screen: they were restored.
DELETE FROM notices WHERE contract = ANY($1::text[]);

-- name: record_ack
-- The customer confirmed reading notice $2 at $3 from $4: evidence; the first counts.
INSERT INTO acknowledgements (contract, request_id, acknowledged_at, address, user_agent)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (contract, request_id) DO NOTHING
RETURNING id;

-- name: snapshot
-- The gear's snapshot: $3 contracts after $2, in contract order, in state $1 (NULL: any).
SELECT contract, subscribers, state, reason, version, effective_at
FROM access
WHERE ($1::text IS NULL OR state = $1) AND contract > $2
ORDER BY contract LIMIT $3;

-- name: record_applied
-- Gear $1 applied version $3 of contract $2's access at $5; an older report changes nothing.
INSERT INTO gear_applied (gear, contract, version, state, applied_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (gear, contract) DO UPDATE
SET version = EXCLUDED.version, state = EXCLUDED.state, applied_at = EXCLUDED.applied_at
WHERE gear_applied.version < EXCLUDED.version;

-- name: drift
-- The first $1 contracts whose desired access a gear has not applied yet, oldest first.
-- Every gear that ever reported counts.
SELECT g.gear, a.contract, a.state AS desired_state, a.version AS desired_version,
       p.state AS applied_state, p.version AS applied_version, a.effective_at
FROM (SELECT DISTINCT gear FROM gear_applied) g
CROSS JOIN access a
LEFT JOIN gear_applied p ON p.gear = g.gear AND p.contract = a.contract
WHERE a.version > 0 AND (p.version IS NULL OR p.version < a.version)
ORDER BY g.gear, a.effective_at, a.contract
LIMIT $1;

-- name: drift_counts
-- Per gear, how many contracts it has not applied yet, and for how long the oldest (at $1).
SELECT g.gear, count(a.contract) AS behind,
       coalesce(extract(epoch FROM $1 - min(a.effective_at)), 0)::float8 AS oldest_seconds
FROM (SELECT DISTINCT gear FROM gear_applied) g
CROSS JOIN access a
LEFT JOIN gear_applied p ON p.gear = g.gear AND p.contract = a.contract
WHERE a.version > 0 AND (p.version IS NULL OR p.version < a.version)
GROUP BY g.gear;

-- name: gears
-- Every gear that ever reported what it applied.
SELECT DISTINCT gear FROM gear_applied ORDER BY gear;

-- name: get_subscribers
-- The subscriber identifiers of contracts $1, locked, to tell which of a run changed.
SELECT contract, subscribers FROM access WHERE contract = ANY($1::text[]) FOR UPDATE;

-- name: upsert_subscribers
-- A run's contracts with their names, languages and subscribers; a new one starts active at $5.
INSERT INTO access (contract, customer_name, language, subscribers, effective_at)
SELECT u.c, u.n, u.l, u.s::jsonb, $5
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(c, n, l, s)
ON CONFLICT (contract) DO UPDATE
SET customer_name = EXCLUDED.customer_name, language = EXCLUDED.language,
    subscribers = EXCLUDED.subscribers;

-- name: bump_versions
-- Contracts $1's access changed: a version more each, effective at $2, the full state back.
UPDATE access SET version = version + 1, effective_at = $2 WHERE contract = ANY($1::text[])
RETURNING contract, version, subscribers, state, reason;

-- name: mark_restores
-- Contracts $1 this transaction restored, with when the payments that did it came ($2).
UPDATE access a SET restore_paid_at = r.paid_at, restore_version = a.version
FROM unnest($1::text[], $2::timestamptz[]) AS r(contract, paid_at)
WHERE a.contract = r.contract AND a.state = 'active';

-- name: restores_applied
-- Restores gear reported applied, pairs ($1 contract, $2 version): their paid_at, cleared.
-- The first gear's report ends the reconnect; the row lock keeps two batches from both.
UPDATE access a SET restore_paid_at = NULL, restore_version = NULL
FROM (SELECT w.contract, w.restore_paid_at AS paid_at
      FROM access w JOIN unnest($1::text[], $2::bigint[]) AS g(contract, version)
        ON w.contract = g.contract AND g.version >= w.restore_version
      WHERE w.restore_paid_at IS NOT NULL
      FOR UPDATE OF w) o
WHERE a.contract = o.contract
RETURNING o.contract, o.paid_at;

-- name: access_counts
-- Contracts per access state, for /metrics (the index access_state serves it).
SELECT state AS label, count(*) AS n FROM access GROUP BY state;
