-- A billing run reads a chunk's contracts before it writes their invoices (since runs are
-- pipelined, on another connection while the chunk before is written), so a contract
-- deleted or renumbered by hand in between would leave an invoice of a contract that is
-- not there: the trigger of 004 waited only for the chunk being written. Every billing run
-- now holds advisory lock 7091318301304122880 ('billrun' in ASCII: above the int4 range of the
-- hashtext() keys every other advisory lock here uses) shared from its start to its end
-- (queries.sql: hold_run_lock), and the trigger takes it exclusively first: deleting or
-- renumbering a contract waits for every run in flight, then sees all it invoiced.
-- Runs do not wait for each other (shared), nor do contract loads (they never change a
-- contract's number).
CREATE OR REPLACE FUNCTION contracts_keep_invoiced() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.contract = OLD.contract THEN
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(7091318301304122880);
    LOCK TABLE invoices IN SHARE MODE;
    IF EXISTS (SELECT 1 FROM invoices WHERE contract = OLD.contract) THEN
        RAISE EXCEPTION 'contract % has invoices: deactivate it instead', OLD.contract
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
