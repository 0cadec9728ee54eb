-- Documents (invoices, credit notes) arrive with their PDF and ISDOC: kept once per
-- document (contract + request id, the document's number), attached to each of its
-- deliveries when sent. Their hashes are the ones invoicing archived.
CREATE TABLE attachments (
    contract   text  NOT NULL,
    request_id text  NOT NULL,
    position   integer NOT NULL,
    filename   text  NOT NULL,
    media_type text  NOT NULL,
    content    bytea NOT NULL,
    sha256     text  NOT NULL CHECK (sha256 = encode(sha256(content), 'hex')),
    PRIMARY KEY (contract, request_id, position)
);
