-- 0007: credits a credit lease held unspent when it was voided (an operator's reset, a store failover) or
-- when its replica died are recorded as a 'lease' event: the store counted them as used and never gave
-- them back, so the ledger's net per tenant stays equal to the counters (a window rebuilt from the ledger
-- comes back as it was). Billing leaves them out: no vendor call was made for them.
ALTER TABLE usage_events DROP CONSTRAINT usage_events_kind_check;
ALTER TABLE usage_events ADD CONSTRAINT usage_events_kind_check CHECK (kind IN ('debit', 'refund', 'adjustment', 'overage', 'replay', 'reset', 'lease'));
