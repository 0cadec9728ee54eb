-- name: last_readings
-- The last readings of the (gear, address) pairs ($1, $2).
SELECT r.gear, r.address, r.boot_id, r.collected_at, r.rx_bytes, r.tx_bytes
FROM unnest($1::text[], $2::text[]) AS k(gear, address)
JOIN readings r ON r.gear = k.gear AND r.address = k.address;

-- name: put_readings
-- The newest readings of (gear, address) pairs, one row a pair.
INSERT INTO readings (gear, address, boot_id, collected_at, rx_bytes, tx_bytes)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[],
                     $6::bigint[])
ON CONFLICT (gear, address) DO UPDATE
SET boot_id = EXCLUDED.boot_id, collected_at = EXCLUDED.collected_at,
    rx_bytes = EXCLUDED.rx_bytes, tx_bytes = EXCLUDED.tx_bytes;

-- name: contracts_of
-- The contract whose subscribers hold each address $1, by the longest prefix.
-- The lowest contract number of the longest wins, were there an overlap.
SELECT DISTINCT ON (a.address) a.address, n.contract
FROM unnest($1::text[]) AS a(address)
JOIN networks n ON n.network >>= a.address::inet
ORDER BY a.address, masklen(n.network) DESC, n.contract;

-- name: add_5min
-- Add traffic to 5-minute buckets (contract $1, address $2, start $3), one row a bucket.
INSERT INTO traffic_5min (contract, address, start, rx_bytes, tx_bytes)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[])
ON CONFLICT (contract, start, address) DO UPDATE
SET rx_bytes = traffic_5min.rx_bytes + EXCLUDED.rx_bytes,
    tx_bytes = traffic_5min.tx_bytes + EXCLUDED.tx_bytes;

-- name: add_hours
-- The same traffic added to its hours (UTC), summed per hour first.
-- Summed first: ON CONFLICT may touch a row once.
INSERT INTO traffic_hour (contract, address, start, rx_bytes, tx_bytes)
SELECT c, a, date_trunc('hour', s, 'UTC'), sum(rx), sum(tx)
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[])
    AS u(c, a, s, rx, tx)
GROUP BY 1, 2, 3
ON CONFLICT (contract, start, address) DO UPDATE
SET rx_bytes = traffic_hour.rx_bytes + EXCLUDED.rx_bytes,
    tx_bytes = traffic_hour.tx_bytes + EXCLUDED.tx_bytes;

-- name: add_days
-- The same traffic added to its days (UTC).
INSERT INTO traffic_day (contract, address, day, rx_bytes, tx_bytes)
SELECT c, a, (s AT TIME ZONE 'UTC')::date, sum(rx), sum(tx)
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[])
    AS u(c, a, s, rx, tx)
GROUP BY 1, 2, 3
ON CONFLICT (contract, day, address) DO UPDATE
SET rx_bytes = traffic_day.rx_bytes + EXCLUDED.rx_bytes,
    tx_bytes = traffic_day.tx_bytes + EXCLUDED.tx_bytes;

-- name: touch_hours
-- The (contract $1, hour $2) pairs changed: to be published (again) when closed.
INSERT INTO hours (contract, hour)
SELECT * FROM unnest($1::text[], $2::timestamptz[])
ON CONFLICT (hour, contract) DO UPDATE SET dirty = true WHERE NOT hours.dirty;

-- name: close_hour
-- Hour $1's changed contracts (not nobody's): each one's next revision, marked published.
UPDATE hours SET revision = revision + 1, dirty = false
WHERE hour = $1 AND dirty AND contract <> ''
RETURNING contract, revision;

-- name: hour_rows
-- Hour $1's traffic of contracts $2, per address.
SELECT contract, address, rx_bytes, tx_bytes FROM traffic_hour
WHERE start = $1 AND contract = ANY($2::text[])
ORDER BY contract, address;

-- name: schedule_if_absent
-- Timer $1 due at $2 unless it is pending already.
INSERT INTO timers (key, due_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING;

-- name: forget_networks
-- Contracts $1's networks, before ``put_networks`` writes them anew.
DELETE FROM networks WHERE contract = ANY($1::text[]);

-- name: put_networks
-- The networks of contracts $1's subscribers $2 (JSON text of contract.upserted's).
INSERT INTO networks (contract, network)
SELECT DISTINCT u.c, n
FROM unnest($1::text[], $2::text[]) AS u(c, s), subscriber_networks(u.s::jsonb) AS n
ON CONFLICT DO NOTHING;

-- name: prune_5min
-- 5-minute buckets that started before $1.
DELETE FROM traffic_5min WHERE start < $1;

-- name: prune_hours
-- Hours that started before $1, and their publication state.
WITH gone AS (DELETE FROM hours WHERE hour < $1 AND NOT dirty)
DELETE FROM traffic_hour WHERE start < $1;

-- name: show_5min
-- Contract $1's traffic from $2 to before $3 per 5-minute bucket and address.
-- $4: one address, or NULL: all.
SELECT start, address, rx_bytes, tx_bytes FROM traffic_5min
WHERE contract = $1 AND start >= $2 AND start < $3 AND ($4::text IS NULL OR address = $4)
ORDER BY start, address;

-- name: show_hour
-- The same per hour.
SELECT start, address, rx_bytes, tx_bytes FROM traffic_hour
WHERE contract = $1 AND start >= $2 AND start < $3 AND ($4::text IS NULL OR address = $4)
ORDER BY start, address;

-- name: show_day
-- The same per day (UTC days).
SELECT day::timestamp AT TIME ZONE 'UTC' AS start, address, rx_bytes, tx_bytes FROM traffic_day
WHERE contract = $1 AND day >= ($2 AT TIME ZONE 'UTC')::date AND day < ($3 AT TIME ZONE 'UTC')::date
  AND ($4::text IS NULL OR address = $4)
ORDER BY day, address;

-- name: contract_known
-- Whether contract $1 has subscribers or traffic here at all.
SELECT EXISTS (SELECT 1 FROM networks WHERE contract = $1)
    OR EXISTS (SELECT 1 FROM traffic_day WHERE contract = $1);
