-- The audit trail: every state-changing operator action (an exemption and its lifting, a
-- postponement, a payment paired by hand, a contracts file loaded ...), one row each,
-- written in the same transaction as the action itself, so an action without its row
-- (or a row without its action) cannot be committed. Each service schema keeps the
-- trail of the actions on its own state; `billing audit log` reads them all.
--
-- Append-only: the trigger below refuses UPDATE, DELETE and TRUNCATE for everybody,
-- the owner included (what an operator did stays, even after its effect was undone).
CREATE TABLE operator_actions (
    id       bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL,  -- the clock's time (the shared test clock's where on)
    operator text        NOT NULL CHECK (operator <> ''),
    action   text        NOT NULL,
    contract text,                  -- NULL: not one contract's (a contracts file loaded)
    details  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    reason   text
);
CREATE INDEX operator_actions_contract ON operator_actions (contract, id);

CREATE FUNCTION operator_actions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'operator_actions is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'an operator action is undone by another action, never by editing the trail';
END
$$;

CREATE TRIGGER operator_actions_no_update_or_delete
    BEFORE UPDATE OR DELETE ON operator_actions
    FOR EACH ROW EXECUTE FUNCTION operator_actions_append_only();
CREATE TRIGGER operator_actions_no_truncate
    BEFORE TRUNCATE ON operator_actions
    FOR EACH STATEMENT EXECUTE FUNCTION operator_actions_append_only();
