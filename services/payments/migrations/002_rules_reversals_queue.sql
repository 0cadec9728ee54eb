-- Pairing rule 3 (message, confirmed payer accounts), reversals, the operators' queue,
-- and credit kept per payment ("lots") so a reversal knows what its credit paid.

ALTER TABLE bank_transactions DROP CONSTRAINT bank_transactions_status_check;
ALTER TABLE bank_transactions ADD CONSTRAINT bank_transactions_status_check
    CHECK (status IN ('matched', 'unmatched', 'reversed', 'reversal'));
ALTER TABLE bank_transactions
    ADD COLUMN counterparty_account text,
    ADD COLUMN counterparty_name    text,
    ADD COLUMN message              text,
    ADD COLUMN rule                 text,
    ADD COLUMN reversal_of          text,   -- on a reversal: the credit it reversed
    ADD COLUMN reversed_by          text,   -- on a reversed credit: the debit
    ADD COLUMN assigned_by          text,   -- operator who paired it by hand
    ADD COLUMN note                 text,
    ADD COLUMN resolved_at          timestamptz;
UPDATE bank_transactions
SET counterparty_account = data ->> 'counterparty_account',
    counterparty_name = data ->> 'counterparty_name',
    message = data ->> 'message';
CREATE INDEX bank_transactions_amount ON bank_transactions (account, currency, amount_minor)
    WHERE status IN ('matched', 'unmatched');

-- Allocations now also come from credit (rule 'credit', source = the payment whose
-- leftover paid) and can be taken back by a reversal.
ALTER TABLE allocations DROP CONSTRAINT allocations_account_bank_tx_id_fkey;
ALTER TABLE allocations ADD COLUMN reversed boolean NOT NULL DEFAULT false;
CREATE INDEX allocations_source ON allocations (account, bank_tx_id) WHERE NOT reversed;

CREATE TABLE credit_lots (
    id              bigserial PRIMARY KEY,   -- spending order: oldest first
    account         text    NOT NULL,
    bank_tx_id      text    NOT NULL,
    contract        text    NOT NULL,
    currency        char(3) NOT NULL,
    remaining_minor bigint  NOT NULL CHECK (remaining_minor >= 0),
    UNIQUE (account, bank_tx_id)
);
CREATE INDEX credit_lots_contract ON credit_lots (contract) WHERE remaining_minor > 0;
INSERT INTO credit_lots (account, bank_tx_id, contract, currency, remaining_minor)
SELECT 'legacy-credit', c.contract, c.contract, k.currency, c.balance_minor
FROM credits c JOIN contracts k USING (contract) WHERE c.balance_minor > 0;
DROP TABLE credits;

-- Payer accounts an operator confirmed for a contract (rule 3).
CREATE TABLE payer_accounts (
    counterparty_account text PRIMARY KEY,
    contract             text        NOT NULL,
    confirmed_by         text        NOT NULL,
    confirmed_at         timestamptz NOT NULL,
    note                 text
);
