-- The zone's top-up, traffic and calls pages (services/zone/usage.py, usage_pages.py,
-- topup_pages.py): the read model of the usage events and the top-ups' outcomes.

-- name: add_topup
-- A request sent from the zone's form, before invoicing answers it.
INSERT INTO topups (contract, request_id, person_id, coupon, requested_at)
VALUES ($1, $2, $3, $4, $5);

-- name: put_topup_answer
-- Invoicing's answer to a request ($5: the event's data), the zone's or an operator's.
-- The same answer again writes the same row; answered_at stays the first consumption's.
INSERT INTO topups (contract, request_id, coupon, outcome, answer, month, answered_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (contract, request_id) DO UPDATE
SET outcome = EXCLUDED.outcome, answer = EXCLUDED.answer, month = EXCLUDED.month,
    coupon = coalesce(topups.coupon, EXCLUDED.coupon),
    answered_at = coalesce(topups.answered_at, EXCLUDED.answered_at);

-- name: topups_of
-- The customer's top-up requests, newest first (at most $2).
SELECT request_id, coupon, requested_at, outcome, answer, month, answered_at
FROM topups WHERE contract = $1
ORDER BY coalesce(requested_at, answered_at) DESC, request_id
LIMIT $2;

-- name: topup_of
-- One request of the customer: another customer's id answers as none.
SELECT request_id, coupon, requested_at, outcome, answer, month, answered_at
FROM topups WHERE contract = $1 AND request_id = $2;

-- name: cap_answers
-- The caps the customer's answers named, newest first: month, cap, left.
SELECT month, (answer->>'cap_minor')::bigint AS cap_minor,
       (answer->>'left_minor')::bigint AS left_minor
FROM topups WHERE contract = $1 AND answer IS NOT NULL
ORDER BY answered_at DESC
LIMIT 50;

-- name: put_balance
-- A prepaid balance; an older one arriving late changes nothing.
INSERT INTO voip_balances (contract, balance_minor, currency, at) VALUES ($1, $2, $3, $4)
ON CONFLICT (contract) DO UPDATE
SET balance_minor = EXCLUDED.balance_minor, currency = EXCLUDED.currency, at = EXCLUDED.at
WHERE voip_balances.at <= EXCLUDED.at;

-- name: balance_of
-- The customer's latest prepaid VoIP balance, if voip published one.
SELECT balance_minor, currency, at FROM voip_balances WHERE contract = $1;

-- name: put_traffic_hours
-- Closed hours of traffic; a higher revision of (contract, hour) replaces the hour whole.
-- The same or a lower one (a repeat, a late older revision) changes nothing.
INSERT INTO traffic_hours (contract, hour, revision, addresses)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::jsonb[])
ON CONFLICT (contract, hour) DO UPDATE
SET revision = EXCLUDED.revision, addresses = EXCLUDED.addresses
WHERE traffic_hours.revision < EXCLUDED.revision;

-- name: traffic_per_address
-- The customer's traffic from $2 to before $3 per address: download (rx), upload (tx).
SELECT a->>'address' AS address, sum((a->>'rx_bytes')::bigint)::bigint AS rx,
       sum((a->>'tx_bytes')::bigint)::bigint AS tx
FROM traffic_hours, jsonb_array_elements(addresses) AS a
WHERE contract = $1 AND hour >= $2 AND hour < $3
GROUP BY 1 ORDER BY 1;

-- name: traffic_per_day
-- The customer's traffic from $2 to before $3 per day of time zone $4, all addresses.
SELECT (hour AT TIME ZONE $4)::date AS day, sum((a->>'rx_bytes')::bigint)::bigint AS rx,
       sum((a->>'tx_bytes')::bigint)::bigint AS tx
FROM traffic_hours, jsonb_array_elements(addresses) AS a
WHERE contract = $1 AND hour >= $2 AND hour < $3
GROUP BY 1 ORDER BY 1;

-- name: add_calls
-- Rated calls; a call id the contract has already is kept as it was.
INSERT INTO calls (contract, call_id, started_at, seconds, number, destination, price_minor,
                   currency, prepaid)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::text[],
                     $6::text[], $7::bigint[], $8::text[], $9::boolean[])
ON CONFLICT (contract, call_id) DO NOTHING;

-- name: calls_summary
-- The customer's calls from $2 to before $3: how many, their seconds, price per currency.
SELECT currency, count(*) AS calls, sum(seconds)::bigint AS seconds,
       sum(price_minor)::bigint AS price_minor
FROM calls WHERE contract = $1 AND started_at >= $2 AND started_at < $3
GROUP BY currency ORDER BY currency;

-- name: calls_page
-- One page of those calls ($4 rows after $5), in time order.
SELECT call_id, started_at, seconds, number, destination, price_minor, currency, prepaid
FROM calls WHERE contract = $1 AND started_at >= $2 AND started_at < $3
ORDER BY started_at, call_id
LIMIT $4 OFFSET $5;

-- name: customer_of
-- The customer's currency and language (its calendar's time zone), if on record.
SELECT currency, language FROM customers WHERE contract = $1;
