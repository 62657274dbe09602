-- 0003: usage_events is appended in time order, so a BRIN index serves time-range scans at a fraction of
-- a B-tree's cost per insert (measured in docs/benchmarks.md). The rollups, not this index, serve billing.
DROP INDEX usage_events_occurred_at;
CREATE INDEX usage_events_occurred_at ON usage_events USING brin (occurred_at);
