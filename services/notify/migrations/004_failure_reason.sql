-- Why a delivery's last attempt failed, as a short fixed word (channels.py lists them:
-- recipient-refused, header-injection, unreachable ...), beside the server's own words in
-- last_error: what the failure metric counts, queryable per delivery.
ALTER TABLE deliveries ADD COLUMN failure_reason text;
