-- 0006: what one request cost, looked up by its request id (GET /admin/v1/usage/requests/{requestId}), and
-- the lookup of a decision whose reply was lost, without a scan of the whole ledger. Partial: events without
-- a request id (resets) are not indexed.
CREATE INDEX usage_events_request_id ON usage_events (request_id) WHERE request_id IS NOT NULL;
