-- A restore's start for billing_reconnect_seconds: when the payment that settled the debt
-- arrived (restore.requested's paid_at) and the access version the restore made; cleared
-- when the first gear reports that version (or a later one) applied.
ALTER TABLE access ADD COLUMN restore_paid_at timestamptz;
ALTER TABLE access ADD COLUMN restore_version bigint;
