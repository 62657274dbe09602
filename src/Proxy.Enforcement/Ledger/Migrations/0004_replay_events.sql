-- 0004: a free retry under an idempotency key the vendor honours is recorded as a 'replay' event of 0
-- credits, so that billing sees every call the vendor received.
ALTER TABLE usage_events DROP CONSTRAINT usage_events_kind_check;
ALTER TABLE usage_events ADD CONSTRAINT usage_events_kind_check CHECK (kind IN ('debit', 'refund', 'adjustment', 'overage', 'replay'));
