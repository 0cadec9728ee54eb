-- Every address and prefix of a contract's subscribers, one network a row (an address is
-- a /32 or /128), so the notice page and the captive-portal API find a customer known by a
-- prefix: the longest network holding the request's address (GiST, inet_ops).
CREATE TABLE access_networks (
    contract text NOT NULL,
    network  cidr NOT NULL,
    PRIMARY KEY (contract, network)
);
CREATE INDEX access_networks_lookup ON access_networks USING gist (network inet_ops);

-- The contracts already known. An entry that is not an address or prefix of its field's
-- family is left out (runtime/004; the contracts loader refuses such entries now).
INSERT INTO access_networks (contract, network)
SELECT DISTINCT a.contract, n.network
FROM access a, subscriber_networks(a.subscribers) AS n(network);

-- The lookup no longer reads the subscribers' jsonb.
DROP INDEX IF EXISTS access_ipv4;
