-- Credit notes (issue 29 item 3): due_minor is what an invoice asks after its credit notes
-- (NULL: none). Nothing more than that is open, whatever payments' events said before they
-- knew of the note; fully credited (0), the invoice is settled and no longer overdue.
ALTER TABLE invoices ADD COLUMN due_minor bigint CHECK (due_minor >= 0);
