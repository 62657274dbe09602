-- 0002: the admin audit trail. Every change made through the admin API (an override of a tenant's Limit,
-- Allocation or Guaranteed, a reset) is one row: who (the admin key's name), when, what, and the values
-- before and after.
CREATE TABLE admin_audit (
    id     bigserial   PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    actor  text        NOT NULL,
    action text        NOT NULL,
    pool   text        NOT NULL,
    tenant text,
    old    jsonb,
    new    jsonb
);

CREATE INDEX admin_audit_at ON admin_audit (at);
