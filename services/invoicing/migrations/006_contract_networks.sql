-- Every address and prefix of each contract's subscribers, one network a row (an address is
-- a /32 or /128), so a contracts load can refuse a network that overlaps another contract's
-- (services/invoicing/address_overlaps.py): two contracts sharing an address would see
-- each other's notice page.
CREATE TABLE contract_networks (
    contract text NOT NULL,
    network  cidr NOT NULL,
    PRIMARY KEY (contract, network)
);
-- A btree, not GiST: the check sorts (one pass), and looks up only the few overlaps found
-- (queries.sql: networks_inside_another, networks_holding); GiST inserts cost 13 us a
-- network, a quarter of a contracts load's time.
CREATE INDEX contract_networks_network ON contract_networks (network);

-- The contracts already stored. An entry that is not an address or prefix of its field's
-- family is left out (runtime/004; the loader refuses such entries now).
INSERT INTO contract_networks (contract, network)
SELECT DISTINCT c.contract, n.network
FROM contracts c, subscriber_networks(c.data -> 'subscribers') AS n(network);
