-- 0005: an operator's reset is recorded as a 'reset' event (credits given back to the counters, negative),
-- so that a window rebuilt from the ledger after Redis lost it comes back as the reset left it. Billing
-- leaves resets out: usage_daily never counts them, and the vendor calls they forgave are billed as before.
ALTER TABLE usage_events DROP CONSTRAINT usage_events_kind_check;
ALTER TABLE usage_events ADD CONSTRAINT usage_events_kind_check CHECK (kind IN ('debit', 'refund', 'adjustment', 'overage', 'replay', 'reset'));
