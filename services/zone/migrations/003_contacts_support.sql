-- Contacts and support (issue 30, docs/zone.md#contacts, #support).

-- The contacts on record as invoicing sends them, whole: a change asked for in the zone
-- names the contact as shown, and invoicing applies it only to a contact still equal.
-- (Rows from before this migration lack phone and language until the contract is
-- published again: a change of such a contact is refused by invoicing as stale.)
ALTER TABLE contacts_on_record
    ADD COLUMN phone    text,
    ADD COLUMN language text NOT NULL DEFAULT 'cs';

-- Requests for one-time links (access, reset) are throttled with the login's counter: per
-- target mailbox and per client address, each request counted.
ALTER TABLE login_failures DROP CONSTRAINT login_failures_kind_check;
ALTER TABLE login_failures ADD CONSTRAINT login_failures_kind_check
    CHECK (kind IN ('account', 'address', 'link-account', 'link-address'));

-- A support request delivered to the operator answers to its sender.
ALTER TABLE mails ADD COLUMN reply_to text;

-- Support requests sent from the zone, with the person who sent them. Also e-mailed to
-- the operator's support address and published (support.requested.v1) for a ticket system.
CREATE TABLE support_requests (
    id           bigserial   PRIMARY KEY,
    request_id   text        NOT NULL UNIQUE,
    contract     text        NOT NULL,
    person_id    bigint      NOT NULL REFERENCES people,
    sender_email text        NOT NULL,
    subject      text        NOT NULL,
    text         text        NOT NULL,
    about        text,
    sent_at      timestamptz NOT NULL
);
CREATE INDEX support_requests_contract ON support_requests (contract, sent_at DESC);
