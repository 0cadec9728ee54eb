-- What was sent (issue 29 item 5): each invoice's and credit note's PDF and ISDOC as made
-- for delivery, with their SHA-256, once per document (the primary key: two workers that
-- make the same document at once archive and announce it once). Append-only: the trigger
-- refuses UPDATE, DELETE and TRUNCATE for everybody, the owner included, as
-- operator_actions does (services/runtime/migrations/003_operator_actions.sql).
CREATE TABLE document_archive (
    number       text        PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    contract     text        NOT NULL,
    pdf          bytea       NOT NULL,
    pdf_sha256   text        NOT NULL CHECK (pdf_sha256 = encode(sha256(pdf), 'hex')),
    isdoc        bytea       NOT NULL,
    isdoc_sha256 text        NOT NULL CHECK (isdoc_sha256 = encode(sha256(isdoc), 'hex')),
    archived_at  timestamptz NOT NULL
);

CREATE FUNCTION document_archive_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'document_archive is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'what was sent stays as it was sent; issue a credit note to correct it';
END;
$$;
CREATE TRIGGER document_archive_no_update_or_delete
    BEFORE UPDATE OR DELETE ON document_archive
    FOR EACH ROW EXECUTE FUNCTION document_archive_append_only();
CREATE TRIGGER document_archive_no_truncate
    BEFORE TRUNCATE ON document_archive
    FOR EACH STATEMENT EXECUTE FUNCTION document_archive_append_only();

-- Documents delivery has still to make: undelivered and not archived yet.
CREATE INDEX invoices_undelivered ON invoices (invoice_number)
    WHERE delivered_at IS NULL AND lines IS NOT NULL;
