-- name: upsert_contracts
-- A run of contracts' country, currency, policy, exemption flag and group (the latest wins).
-- Rows staged one per event (``Unit.stage_row``), written by one statement: one array a
-- column. Likewise the invoice facts below.
INSERT INTO contracts (contract, country, currency, policy, exempt, grp)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::text[])
ON CONFLICT (contract) DO UPDATE
SET country = EXCLUDED.country, currency = EXCLUDED.currency, policy = EXCLUDED.policy,
    exempt = EXCLUDED.exempt, grp = EXCLUDED.grp;

-- name: get_contract
-- Contract $1 with its exemption, promise and unmatched payment, if dunning knows it.
-- One round trip for the contract and the facts kept beside it.
SELECT c.contract, c.country, c.currency, c.policy, c.grp,
       c.exempt OR e.contract IS NOT NULL AS exempt, e.reason AS exempt_reason,
       (SELECT max(until) FROM promises p WHERE p.contract = c.contract AND p.accepted)
           AS promised_until,
       u.since AS unmatched_since
FROM contracts c
LEFT JOIN exemptions e ON e.contract = c.contract AND e.lifted_at IS NULL
LEFT JOIN unmatched_payments u ON u.contract = c.contract
WHERE c.contract = $1;

-- name: all_contracts
-- Every contract dunning knows, in contract order (an operator's sweep of them all).
SELECT contract FROM contracts ORDER BY contract;

-- name: insert_promise
-- A promise to pay by $2, accepted or refused, with who made it and from where.
INSERT INTO promises (contract, until, by, reason, address, user_agent, made_at, accepted, note)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: promises_of
-- Contract $1's promises to pay, accepted or not, in the order made.
SELECT until, by, reason, address, made_at, accepted, note
FROM promises WHERE contract = $1 ORDER BY made_at, id;

-- name: set_exemption
-- Exempt contract $1 from dunning for reason $2, by $3, from $4.
-- After lift_exemption (one in force at a time): a new exemption replaces the old one,
-- which stays, lifted.
INSERT INTO exemptions (contract, reason, by, since) VALUES ($1, $2, $3, $4);

-- name: lift_exemption
-- Lift contract $1's exemption in force, if any, at $2 by $3 for reason $4.
-- The row is kept, never deleted: the history says who exempted and who lifted.
UPDATE exemptions SET lifted_at = $2, lifted_by = $3, lift_reason = $4
WHERE contract = $1 AND lifted_at IS NULL
RETURNING reason, by, since;

-- name: exemptions_of
-- Contract $1's exemptions, lifted or in force, in the order set.
SELECT reason, by, since, lifted_at, lifted_by, lift_reason
FROM exemptions WHERE contract = $1 ORDER BY since, id;

-- name: mark_unmatched
-- A payment of contract $1 waits unmatched since $2: the guard holds suspension off for a while.
INSERT INTO unmatched_payments (contract, since, bank_tx_id) VALUES ($1, $2, $3)
ON CONFLICT (contract) DO NOTHING;

-- name: clear_unmatched
-- Contract $1's unmatched payment was sorted out: the guard holding suspension off is lifted.
DELETE FROM unmatched_payments WHERE contract = $1;

-- name: invoices_issued
-- A run of issued invoices as dunning's facts; a repeat keeps what is still open.
-- $8: a VoIP credit top-up's invoice (kept out of dunning by domain.arrears).
INSERT INTO invoices (invoice_number, contract, vs, ss, due_on, amount_minor, open_minor, currency,
                      topup)
SELECT u.n, u.c, u.vs, u.ss, u.d, u.a, u.a, u.cur, u.t
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[], $6::bigint[],
            $7::text[], $8::boolean[]) AS u(n, c, vs, ss, d, a, cur, t)
ON CONFLICT (invoice_number) DO UPDATE
SET vs = EXCLUDED.vs, ss = EXCLUDED.ss, due_on = EXCLUDED.due_on, topup = EXCLUDED.topup,
    amount_minor = EXCLUDED.amount_minor, currency = EXCLUDED.currency,
    open_minor = COALESCE(invoices.open_minor, EXCLUDED.open_minor);

-- name: invoices_settled
-- A run of settled invoices: nothing open (a row is made if the issue is not here yet).
INSERT INTO invoices (invoice_number, contract, open_minor, settled)
SELECT u.n, u.c, 0, true FROM unnest($1::text[], $2::text[]) AS u(n, c)
ON CONFLICT (invoice_number) DO UPDATE SET open_minor = 0, settled = true;

-- name: invoices_partially_paid
-- A run of partly paid invoices' open amounts; a settled invoice stays settled.
-- None is open for more than its credit notes left it asking (LEAST ignores a NULL).
INSERT INTO invoices (invoice_number, contract, open_minor)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
ON CONFLICT (invoice_number) DO UPDATE
SET open_minor = LEAST(EXCLUDED.open_minor, invoices.due_minor)
WHERE NOT invoices.settled;

-- name: invoices_credited
-- A run of credit notes: $1 invoice, $2 contract, $3 what it asks after all its notes.
-- Open no more than that (what payments said it is open for may predate the note); fully
-- credited, settled. A row is made if the issue is not here yet; a repeat or an older note
-- (asking more) changes nothing, as the lowest due wins.
INSERT INTO invoices (invoice_number, contract, open_minor, settled, due_minor)
SELECT u.n, u.c, u.d, u.d = 0, u.d FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(n, c, d)
ON CONFLICT (invoice_number) DO UPDATE
SET due_minor = LEAST(invoices.due_minor, EXCLUDED.due_minor),
    open_minor = CASE WHEN EXCLUDED.due_minor = 0 THEN 0
                      ELSE LEAST(coalesce(invoices.open_minor, EXCLUDED.due_minor),
                                 EXCLUDED.due_minor) END,
    settled = invoices.settled OR EXCLUDED.due_minor = 0;

-- name: invoice_reopened
-- Invoice $1 of contract $2 open again for $3, after a payment was taken back.
-- No more than its credit notes left it asking, and not at all when they credited all of it.
UPDATE invoices SET open_minor = LEAST($3, due_minor), settled = false
WHERE invoice_number = $1 AND contract = $2 AND (due_minor IS NULL OR due_minor > 0);

-- name: acknowledge
-- The customer confirmed contract $1's notice at $2 (the first confirmation counts).
-- Only a notice on screen can be confirmed.
UPDATE state SET acknowledged_at = COALESCE(acknowledged_at, $2), updated_at = $3
WHERE contract = $1 AND stage = 'notice';

-- name: actions_of
-- The actions taken on contract $1, in the order decided (for an operator).
SELECT request_id, kind, step, decided_at FROM actions WHERE contract = $1 ORDER BY decided_at;

-- name: lock_contracts
-- Take the advisory locks of contracts $1 for this transaction, in the order given.
-- Pass them sorted, so that two transactions locking overlapping sets take them in the
-- same order.
SELECT count(pg_advisory_xact_lock(hashtext('dunning:' || c))) FROM unnest($1::text[]) AS c;

-- name: facts_of
-- Everything decide() needs for contracts $1, in one round trip instead of three.
-- Under load each round trip is a wait for PostgreSQL on busy CPUs. Each column is an
-- array of rows:
-- contracts: (contract, country, policy, grp, exempt, promised_until, unmatched_since,
--   stage, episode, acknowledged_at, noticed_at) of the contracts dunning knows;
-- unpaid: (contract, invoice_number, vs, ss, due_on, open_minor, currency, topup) of their
--   unpaid invoices with a due date;
-- done: (contract, request_id) of the actions already taken.
-- The last two probe their index once per contract, whatever the statistics say. Written
-- as `contract = ANY($1)`, the planner trusted statistics from when the invoices were a
-- thousandth of their size and scanned all unpaid invoices for every batch; on actions
-- never analyzed (autovacuum not yet come, or off) it took 500 keys to match every row and
-- scanned all of a sweep's actions (docs/performance.md#finding-9, #finding-15). OFFSET 0
-- keeps each subquery from being flattened into a join it could plan that way again.
SELECT
    ARRAY(
        SELECT row(c.contract, c.country, c.policy, c.grp,
                   c.exempt OR e.contract IS NOT NULL,
                   (SELECT max(until) FROM promises p
                     WHERE p.contract = c.contract AND p.accepted),
                   u.since,
                   s.stage, s.episode, s.acknowledged_at,
                   CASE WHEN coalesce(s.stage, 'active') <> 'active' THEN
                       (SELECT max(decided_at) FROM actions a
                         WHERE a.contract = c.contract AND a.kind = 'notice')
                   END)
        FROM contracts c
        LEFT JOIN exemptions e ON e.contract = c.contract AND e.lifted_at IS NULL
        LEFT JOIN unmatched_payments u ON u.contract = c.contract
        LEFT JOIN state s ON s.contract = c.contract
        WHERE c.contract = ANY($1::text[])
    ) AS contracts,
    ARRAY(
        SELECT row(i.contract, i.invoice_number, i.vs, i.ss, i.due_on, i.open_minor,
                   i.currency, i.topup)
        FROM (SELECT DISTINCT unnest($1::text[]) AS contract) k
        CROSS JOIN LATERAL (
            SELECT * FROM invoices i
            WHERE i.contract = k.contract AND NOT i.settled AND i.due_on IS NOT NULL
            OFFSET 0
        ) i
    ) AS unpaid,
    ARRAY(
        SELECT row(a.contract, a.request_id)
        FROM (SELECT DISTINCT unnest($1::text[]) AS contract) k
        CROSS JOIN LATERAL (
            SELECT * FROM actions a WHERE a.contract = k.contract OFFSET 0
        ) a
    ) AS done;

-- name: insert_actions
-- The actions a run decided, at $5; returns the new ones (a repeat request is not).
INSERT INTO actions (contract, request_id, kind, step, decided_at)
SELECT u.c, u.r, u.k, u.s, $5
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(c, r, k, s)
ON CONFLICT DO NOTHING
RETURNING contract, request_id;

-- name: last_customer_promises
-- When each of contracts $1 last made an accepted promise itself: a policy allows one so often.
SELECT contract, max(made_at) AS made_at
FROM promises WHERE contract = ANY($1::text[]) AND accepted AND by = 'customer'
GROUP BY contract;

-- name: save_states
-- A run of contracts' dunning states at $7; returns those whose explanation key $8 changed.
-- One row per contract. The contracts returned get their new explanation published. The
-- CTE ``before`` reads the rows as they were before this statement (one snapshot for the
-- whole statement).
WITH new AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],
                         $6::timestamptz[], $8::text[]) AS u(c, st, ep, ack, why, nxt, k)
), before AS (
    SELECT s.contract, s.status_key FROM state s JOIN new ON new.c = s.contract
), saved AS (
    INSERT INTO state (contract, stage, episode, acknowledged_at, why, next_check_at,
                       updated_at, status_key)
    SELECT c, st, ep, ack, why, nxt, $7, k FROM new
    ON CONFLICT (contract) DO UPDATE
    SET stage = EXCLUDED.stage, episode = EXCLUDED.episode,
        acknowledged_at = EXCLUDED.acknowledged_at, why = EXCLUDED.why,
        next_check_at = EXCLUDED.next_check_at, updated_at = EXCLUDED.updated_at,
        status_key = EXCLUDED.status_key
)
SELECT new.c AS contract FROM new LEFT JOIN before b ON b.contract = new.c
WHERE b.status_key IS DISTINCT FROM new.k;

-- name: stage_counts
-- Contracts per dunning stage, for /metrics.
SELECT stage AS label, count(*) AS n FROM state GROUP BY stage;
