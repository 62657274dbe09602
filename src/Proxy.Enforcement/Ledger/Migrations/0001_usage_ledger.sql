-- 0001: the usage ledger. Every debit, refund, adjustment and overage is one row, keyed by its event id so
-- that a redelivered event is never billed twice; usage_daily rolls the rows up per UTC day, pool, tenant
-- and route for billing queries. Credits are signed: refunds are negative, adjustments either way.
CREATE TABLE usage_events (
    event_id    text        PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    pool        text        NOT NULL,
    tenant      text        NOT NULL,
    route       text        NOT NULL,
    credits     bigint      NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('debit', 'refund', 'adjustment', 'overage')),
    shadow      boolean     NOT NULL DEFAULT false,
    request_id  text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX usage_events_occurred_at ON usage_events (occurred_at);

CREATE TABLE usage_daily (
    day        date   NOT NULL,
    pool       text   NOT NULL,
    tenant     text   NOT NULL,
    route      text   NOT NULL,
    debited    bigint NOT NULL DEFAULT 0,
    overage    bigint NOT NULL DEFAULT 0,
    refunded   bigint NOT NULL DEFAULT 0,
    adjusted   bigint NOT NULL DEFAULT 0,
    net        bigint NOT NULL DEFAULT 0,
    events     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, pool, tenant, route)
);
