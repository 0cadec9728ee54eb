-- The customer's promise to pay, made on the notice page (once per notice).
ALTER TABLE notices ADD COLUMN promised_days integer;
