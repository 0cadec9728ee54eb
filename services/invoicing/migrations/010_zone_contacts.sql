-- Contacts a customer changed in the customer zone (issue 30, docs/zone.md#contacts): the
-- contract's contacts after the last change applied (also in ``contracts.data``), and what
-- the contracts file said of them then. Loading the file again keeps the customer's
-- contacts while the file still says what it said (the operator changed nothing there);
-- a file that says something else now wins, and the override row goes (audited).
CREATE TABLE zone_contacts (
    contract      text        PRIMARY KEY REFERENCES contracts,
    contacts      jsonb       NOT NULL,
    file_contacts jsonb       NOT NULL,
    changed_at    timestamptz NOT NULL,
    changed_by    text        NOT NULL  -- the zone person's e-mail
);
