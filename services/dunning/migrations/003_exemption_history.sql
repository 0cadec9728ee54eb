-- An exemption is never deleted: lifting it (or replacing it with another) records when
-- and by whom, so who exempted a customer, when and why stays known. At most one
-- exemption of a contract is in force (lifted_at IS NULL).
ALTER TABLE exemptions DROP CONSTRAINT exemptions_pkey;
ALTER TABLE exemptions
    ADD COLUMN id        bigserial PRIMARY KEY,
    ADD COLUMN lifted_at timestamptz,
    ADD COLUMN lifted_by text,
    ADD COLUMN lift_reason text;
CREATE UNIQUE INDEX exemptions_in_force ON exemptions (contract) WHERE lifted_at IS NULL;
CREATE INDEX exemptions_contract ON exemptions (contract, since);
