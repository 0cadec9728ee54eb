-- Credit notes (issue 29 item 3): an invoice's amount_minor is what it asks now, its total
-- less what its credit notes credited; credited_minor is that credit, all notes together,
-- so a note seen again (or an older one after a newer) changes nothing.
-- What a credit note gives back of what was paid is an allocation of the negative amount
-- (rule 'credit_note') and the same amount in the paying payment's credit lot: what was
-- paid stays on record, and a later reversal of that payment takes back both.
ALTER TABLE invoices ADD COLUMN credited_minor bigint NOT NULL DEFAULT 0
    CHECK (credited_minor >= 0);
