-- name: upsert_customers
-- A run of contracts at once (the last of each contract in the run wins in Python).
INSERT INTO customers (contract, customer_name, language, currency, active, updated_at)
SELECT c, n, l, cur, a, $6
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[]) AS t(c, n, l, cur, a)
ON CONFLICT (contract) DO UPDATE
SET customer_name = EXCLUDED.customer_name, language = EXCLUDED.language,
    currency = EXCLUDED.currency, active = EXCLUDED.active, updated_at = EXCLUDED.updated_at;

-- name: drop_contacts
-- The contacts on record of these contracts, replaced as a whole by the next statement.
DELETE FROM contacts_on_record WHERE contract = ANY($1::text[]);

-- name: insert_contacts
-- The contracts' contacts as their owner (invoicing) last sent them.
INSERT INTO contacts_on_record (contract, position, name, email, owner, categories, phone,
                                language)
SELECT c, p, n, e, o, string_to_array(cat, ','), ph, l
FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::boolean[], $6::text[],
            $7::text[], $8::text[])
     AS t(c, p, n, e, o, cat, ph, l);

-- name: upsert_invoices
-- Issued invoices, a run at once; issuing again (a redelivery) changes nothing.
INSERT INTO invoices (invoice_number, contract, vs, ss, period, issued_on, due_on,
                      amount_minor, currency, account)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::date[],
                     $7::date[], $8::bigint[], $9::text[], $10::text[])
ON CONFLICT (invoice_number) DO NOTHING;

-- name: cancel_invoice
-- An invoice cancelled by invoicing (same topic and key as its issue: it is there).
UPDATE invoices SET cancelled = true WHERE invoice_number = $1;

-- name: put_settlement
-- What payments last said about an invoice: paid, partially paid or open again.
INSERT INTO settlements (invoice_number, contract, paid_minor, open_minor, state)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (invoice_number) DO UPDATE
SET paid_minor = EXCLUDED.paid_minor, open_minor = EXCLUDED.open_minor, state = EXCLUDED.state;

-- name: insert_payment
-- A payment matched to a contract; the same bank movement again is a no-op.
INSERT INTO payments (contract, account, bank_tx_id, booked_on, amount_minor, currency, rule,
                      allocations, credit_minor, credit_balance_minor)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (account, bank_tx_id) DO NOTHING;

-- name: reverse_payment
-- The bank took a matched payment back.
UPDATE payments SET reversed_on = $3 WHERE account = $1 AND bank_tx_id = $2;

-- name: customer
-- The customer (contract) a membership acts for.
SELECT contract, customer_name, language, currency, active FROM customers WHERE contract = $1;

-- name: contacts_of
-- The contacts on record of the customer, in the order invoicing sent them.
SELECT position, name, email, phone, language, owner, categories FROM contacts_on_record
WHERE contract = $1 ORDER BY position;

-- name: contact_of
-- One contact of the customer: another customer's finds nothing, as a wrong number.
SELECT position, name, email, phone, language, owner, categories FROM contacts_on_record
WHERE contract = $1 AND position = $2;

-- name: owner_contact_of
-- The customer's own contact details: its owner contact on record.
SELECT position, name, email, phone, language, owner, categories FROM contacts_on_record
WHERE contract = $1 AND owner ORDER BY position LIMIT 1;

-- name: contact_name_of
-- The name the contract's contacts give an e-mail address, if any (a support request's sender).
SELECT name FROM contacts_on_record WHERE contract = $1 AND email = $2
ORDER BY owner DESC, position LIMIT 1;

-- name: contact_on_record
-- Whether this e-mail is on record for the contract; owner first.
SELECT owner FROM contacts_on_record
WHERE contract = $1 AND email = $2 ORDER BY owner DESC LIMIT 1;

-- name: invoices_of
-- A customer's invoices with what was paid on each, newest first.
SELECT i.invoice_number, i.vs, i.ss, i.period, i.issued_on, i.due_on, i.amount_minor,
       i.currency, i.account, i.cancelled, s.state AS settlement, s.paid_minor, s.open_minor
FROM invoices i LEFT JOIN settlements s USING (invoice_number)
WHERE i.contract = $1
ORDER BY i.issued_on DESC, i.invoice_number DESC
LIMIT 500;

-- name: invoice_of
-- One invoice of the customer: another customer's number finds nothing, as a wrong one.
SELECT i.invoice_number, i.vs, i.ss, i.period, i.issued_on, i.due_on, i.amount_minor,
       i.currency, i.account, i.cancelled, s.state AS settlement, s.paid_minor, s.open_minor
FROM invoices i LEFT JOIN settlements s USING (invoice_number)
WHERE i.contract = $1 AND i.invoice_number = $2;

-- name: payments_of
-- A customer's payments, newest first.
SELECT id, booked_on, amount_minor, currency, rule, allocations, credit_minor,
       credit_balance_minor, reversed_on
FROM payments WHERE contract = $1
ORDER BY booked_on DESC, id DESC
LIMIT 500;

-- name: payment_of
-- One payment of the customer: another customer's id finds nothing, as a wrong one.
SELECT id, booked_on, amount_minor, currency, rule, allocations, credit_minor,
       credit_balance_minor, reversed_on, bank_tx_id
FROM payments WHERE contract = $1 AND id = $2;

-- name: person_by_email
-- A person by (lower-case) e-mail.
SELECT id, email, password_hash, language FROM people WHERE email = $1;

-- name: owner_of_contract
-- The owner person of a contract (login by customer number).
SELECT p.id, p.email, p.password_hash, p.language
FROM memberships m JOIN people p ON p.id = m.person_id
WHERE m.contract = $1 AND m.owner;

-- name: add_person
-- A new person (no password yet), or the one with this e-mail; its id.
INSERT INTO people (email, language, created_at) VALUES ($1, $2, $3)
ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email
RETURNING id;

-- name: set_password
-- A person's new password hash.
UPDATE people SET password_hash = $2, password_changed_at = $3 WHERE id = $1;

-- name: set_language
-- The language a person chose, remembered for the next visit.
UPDATE people SET language = $2 WHERE id = $1;

-- name: add_membership
-- A person may act for a customer with these rights.
-- Again: the rights are replaced, an owner stays owner.
INSERT INTO memberships (person_id, contract, owner, rights, created_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (person_id, contract) DO UPDATE
SET owner = memberships.owner OR EXCLUDED.owner, rights = EXCLUDED.rights;

-- name: owner_taken
-- Whether another person already owns the contract.
SELECT person_id FROM memberships WHERE contract = $1 AND owner AND person_id <> $2;

-- name: set_rights
-- A member's rights, changed by the customer's manager of users (never the owner's).
UPDATE memberships SET rights = $3 WHERE contract = $1 AND person_id = $2 AND NOT owner;

-- name: remove_membership
-- A member removed from the customer (never the owner); their sessions acting for it end.
WITH gone AS (
    DELETE FROM memberships WHERE contract = $1 AND person_id = $2 AND NOT owner
    RETURNING person_id, contract
)
UPDATE sessions s SET contract = NULL FROM gone
WHERE s.person_id = gone.person_id AND s.contract = gone.contract;

-- name: members_of
-- The people who may act for a customer, owner first.
SELECT p.id AS person_id, p.email, m.owner, m.rights, p.password_hash IS NOT NULL AS active
FROM memberships m JOIN people p ON p.id = m.person_id
WHERE m.contract = $1 ORDER BY m.owner DESC, p.email;

-- name: member_of
-- One member of the customer: another customer's person id finds nothing, as a wrong one.
SELECT p.id AS person_id, p.email, m.owner, m.rights, p.password_hash IS NOT NULL AS active
FROM memberships m JOIN people p ON p.id = m.person_id
WHERE m.contract = $1 AND m.person_id = $2;

-- name: memberships_of_person
-- The customers a person may act for, to pick from.
SELECT m.contract, m.owner, m.rights, c.customer_name
FROM memberships m LEFT JOIN customers c USING (contract)
WHERE m.person_id = $1 ORDER BY m.contract;

-- name: pending_invites
-- Invitations of a customer not yet used and not expired.
SELECT email, rights, expires_at FROM links
WHERE contract = $1 AND purpose = 'invite' AND used_at IS NULL AND expires_at > $2
ORDER BY created_at DESC;

-- name: add_link
-- A one-time link, by its token's hash.
INSERT INTO links (token_hash, purpose, email, contract, owner, rights, invited_by, created_at,
                   expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: live_link
-- A link that is neither used nor expired.
SELECT purpose, email, contract, owner, rights, invited_by FROM links
WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2;

-- name: use_link
-- Take a link once: only the first of two concurrent uses updates the row.
UPDATE links SET used_at = $2
WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
RETURNING purpose, email, contract, owner, rights, invited_by;

-- name: add_session
-- A new logged-in session (the cookie's value hashed), acting for ``contract``.
INSERT INTO sessions (id_hash, person_id, contract, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5);

-- name: drop_session
-- Log out (or the id replaced at login).
DELETE FROM sessions WHERE id_hash = $1;

-- name: drop_sessions_of_person
-- Every session of a person but the one given (after a password change or reset).
DELETE FROM sessions WHERE person_id = $1 AND id_hash IS DISTINCT FROM $2;

-- name: acting
-- Who asks: the live session, its person, the membership it acts for and its rights now.
-- The one place every request's identity comes from, read anew each request: a right
-- removed a moment ago is gone here. No membership: logged in, acting for nobody.
SELECT s.person_id, p.email, p.language, s.contract, m.owner, m.rights,
       c.customer_name
FROM sessions s
JOIN people p ON p.id = s.person_id
LEFT JOIN memberships m ON m.person_id = s.person_id AND m.contract = s.contract
LEFT JOIN customers c ON c.contract = m.contract
WHERE s.id_hash = $1 AND s.expires_at > $2;

-- name: switch_session
-- The session acts for another customer, only one the person is a member of.
UPDATE sessions s SET contract = m.contract
FROM memberships m
WHERE s.id_hash = $1 AND m.person_id = s.person_id AND m.contract = $2;

-- name: prune_sessions
-- Expired sessions, dropped now and then.
DELETE FROM sessions WHERE expires_at <= $1;

-- name: lock_account
-- One login attempt per account name at a time, till the transaction ends.
-- Parallel guesses queue behind each other's count instead of all passing the same one.
SELECT pg_advisory_xact_lock(hashtext('zone-login:' || $1));

-- name: failures
-- Failed logins of an account or address within the window.
SELECT at FROM login_failures WHERE kind = $1 AND key = $2 AND at > $3 ORDER BY at;

-- name: add_failure
-- One failed login, counted against the account and the address.
INSERT INTO login_failures (kind, key, at) VALUES ('account', $1, $3), ('address', $2, $3);

-- name: add_link_request
-- One request for a link (access, reset), counted against the mailbox and the address.
INSERT INTO login_failures (kind, key, at)
VALUES ('link-account', $1, $3), ('link-address', $2, $3);

-- name: clear_account_failures
-- A successful login forgives the account's failures (not the address's).
DELETE FROM login_failures WHERE kind = 'account' AND key = $1;

-- name: prune_failures
-- Failures older than the window count for nothing any more.
DELETE FROM login_failures WHERE at <= $1;

-- name: record
-- One line of the zone's audit log, in the transaction of what it records.
INSERT INTO audit (at, actor, action, contract, subject, address, details)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: queue_mail
-- A message to send, in the transaction that made its link.
INSERT INTO mails (recipient, subject, body, created_at, next_attempt_at, reply_to)
VALUES ($1, $2, $3, $4, $4, $5);

-- name: claim_mail
-- The next due message, leased: its next attempt moved past the lease.
-- Another instance's sender skips it; the claim commits at once, before anything is sent.
UPDATE mails SET next_attempt_at = $1 + make_interval(secs => $2)
WHERE id = (
    SELECT id FROM mails WHERE status = 'pending' AND next_attempt_at <= $1
    ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING id, recipient, subject, body, attempts, reply_to;

-- name: mail_sent
-- Sent: the body (a live link) is not kept.
UPDATE mails SET status = 'sent', sent_at = $2, attempts = attempts + 1, body = '',
                 last_error = NULL
WHERE id = $1;

-- name: mail_retry
-- Not sent this time: try again at $2.
UPDATE mails SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1;

-- name: mail_failed
-- Given up: the body (a live link) is not kept.
UPDATE mails SET status = 'failed', attempts = attempts + 1, last_error = $2, body = ''
WHERE id = $1;

-- name: due_mails
-- Messages due now (the dev stack's quiescence waits for none).
SELECT count(*) FROM mails WHERE status = 'pending' AND next_attempt_at <= $1;

-- name: owner_login_of
-- The e-mail of the person who owns the contract in the zone, if anybody does.
SELECT p.email FROM memberships m JOIN people p ON p.id = m.person_id
WHERE m.contract = $1 AND m.owner;

-- name: owners_to_invite
-- Owner contacts on record of contracts nobody owns in the zone and with no live invitation.
SELECT DISTINCT ON (c.contract) c.contract, c.email, cu.language
FROM contacts_on_record c JOIN customers cu USING (contract)
WHERE c.owner AND c.email IS NOT NULL AND cu.active
  AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.contract = c.contract AND m.owner)
  AND NOT EXISTS (SELECT 1 FROM links l WHERE l.contract = c.contract AND l.owner
                  AND l.used_at IS NULL AND l.expires_at > $1)
ORDER BY c.contract, c.position;

-- name: upsert_services
-- The services and subscriber addresses of a run of contracts (the last of each wins).
INSERT INTO customer_services (contract, currency, monthly_fee_minor, services, subscribers,
                               updated_at)
SELECT c, cur, fee, s, sub, $6
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::jsonb[], $5::jsonb[])
     AS t(c, cur, fee, s, sub)
ON CONFLICT (contract) DO UPDATE
SET currency = EXCLUDED.currency, monthly_fee_minor = EXCLUDED.monthly_fee_minor,
    services = EXCLUDED.services, subscribers = EXCLUDED.subscribers,
    updated_at = EXCLUDED.updated_at;

-- name: services_of
-- The customer's services and addresses as contract.upserted last told them.
SELECT currency, monthly_fee_minor, services, subscribers FROM customer_services
WHERE contract = $1;

-- name: insert_documents
-- A document's files (document.ready); a redelivery keeps the files first received.
INSERT INTO documents (number, media_type, contract, kind, filename, sha256, content,
                       received_at)
SELECT n, m, c, k, f, h, b, $8
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::bytea[]) AS t(n, m, c, k, f, h, b)
ON CONFLICT (number, media_type) DO NOTHING;

-- name: document_of
-- One file of the customer's document: another customer's answers as a missing one.
SELECT filename, media_type, sha256, content FROM documents
WHERE contract = $1 AND number = $2 AND media_type = $3;

-- name: documents_of
-- Which files the customer's documents $2 have (the invoice pages offer these).
SELECT number, media_type FROM documents WHERE contract = $1 AND number = ANY($2::text[]);

-- name: put_dunning_status
-- A contract's latest dunning explanation; an older one arriving late changes nothing.
INSERT INTO dunning_status (contract, stage, decided_at, status) VALUES ($1, $2, $3, $4)
ON CONFLICT (contract) DO UPDATE
SET stage = EXCLUDED.stage, decided_at = EXCLUDED.decided_at, status = EXCLUDED.status
WHERE dunning_status.decided_at <= EXCLUDED.decided_at;

-- name: dunning_status_of
-- The customer's latest dunning explanation, if dunning ever published one.
SELECT stage, decided_at, status FROM dunning_status WHERE contract = $1;
-- name: add_support_request
-- A support request, with the person who sent it.
INSERT INTO support_requests (request_id, contract, person_id, sender_email, subject, text,
                              about, sent_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);
