-- name: changes_lock
-- A change waits for a contracts load under way (and reads the contract as it left it).
LOCK TABLE zone_contacts IN ROW EXCLUSIVE MODE;

-- name: load_lock
-- A contracts load keeps changes from the zone out until it commits.
-- Otherwise a change committed between the load's reading of zone_contacts and its
-- writing of the contract would be overwritten by the file's contacts, unseen.
LOCK TABLE zone_contacts IN SHARE ROW EXCLUSIVE MODE;

-- name: contract_for_change
-- A contract's data, locked until the change applied to it commits.
SELECT data FROM contracts WHERE contract = $1 FOR UPDATE;

-- name: set_contract_data
-- The contract's data with its contacts as the customer changed them.
UPDATE contracts SET data = $2::jsonb, updated_at = $3 WHERE contract = $1;

-- name: zone_contacts_of
-- The contacts customers changed in the zone, of these contracts, and what the file said.
SELECT contract, contacts, file_contacts FROM zone_contacts WHERE contract = ANY($1::text[]);

-- name: put_zone_contacts
-- The contacts after a customer's change; what the file said is kept from the first change.
INSERT INTO zone_contacts (contract, contacts, file_contacts, changed_at, changed_by)
VALUES ($1, $2::jsonb, $3::jsonb, $4, $5)
ON CONFLICT (contract) DO UPDATE
SET contacts = EXCLUDED.contacts, changed_at = EXCLUDED.changed_at,
    changed_by = EXCLUDED.changed_by;

-- name: drop_zone_contacts
-- The contracts file changed these contracts' contacts: the file's win from now on.
DELETE FROM zone_contacts WHERE contract = ANY($1::text[]);
