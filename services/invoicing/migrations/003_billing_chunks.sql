-- A billing run walks the contracts in chunks, in byte order (as the domain sorts them):
-- keyset pagination needs an index in that order whatever the database's collation.
CREATE INDEX contracts_byte_order ON contracts (contract COLLATE "C");
