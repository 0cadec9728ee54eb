-- The addresses and prefixes of a contract's subscribers (the jsonb of contract.upserted's
-- ``subscribers``) as networks, an address a /32 or /128: what provisioning's lookup and
-- invoicing's overlap check were filled from when they were added. An entry that is not an
-- address or prefix of its field's family is left out (services/runtime/networks.py
-- refuses such entries where contracts enter).
CREATE FUNCTION subscriber_networks(subscribers jsonb) RETURNS SETOF cidr
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    r record;
    net cidr;
BEGIN
    FOR r IN
        SELECT f.field, f.version, v.value
        FROM (VALUES ('ipv4', 4), ('ipv6', 6), ('ipv4_prefixes', 4), ('ipv6_prefixes', 6))
            AS f(field, version)
        CROSS JOIN LATERAL jsonb_array_elements_text(
            CASE WHEN jsonb_typeof(subscribers -> f.field) = 'array'
                 THEN subscribers -> f.field ELSE '[]'::jsonb END
        ) AS v(value)
    LOOP
        BEGIN
            net := r.value::cidr;
        EXCEPTION WHEN others THEN
            CONTINUE;
        END;
        IF family(net) = r.version AND (
            r.field LIKE '%prefixes' OR masklen(net) = CASE r.version WHEN 4 THEN 32 ELSE 128 END
        ) THEN
            RETURN NEXT net;
        END IF;
    END LOOP;
END
$$;
