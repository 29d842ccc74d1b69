-- Webhooks: endpoints admins register, the events written with the changes they tell
-- of (the outbox), and one delivery per endpoint and event, claimed with a lease like a
-- task so that one process delivers it.
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    url         TEXT NOT NULL,
    -- the HMAC-SHA256 key of the signature header; never shown again
    secret      TEXT NOT NULL,
    -- the event kinds wanted, as ",kind,kind," (a LIKE '%,kind,%' matches one)
    events      TEXT NOT NULL,
    enabled     INTEGER NOT NULL DEFAULT 1,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    server_id INTEGER,
    data      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_at ON events(at);

CREATE TABLE webhook_deliveries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id    INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id      INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    -- deliveries of one endpoint go in order per server (0: events of no server)
    server_key    INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_until   INTEGER,
    last_status   INTEGER,
    last_error    TEXT NOT NULL DEFAULT '',
    last_latency_ms INTEGER,
    created       INTEGER NOT NULL,
    finished      INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries(webhook_id, server_key, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_of ON webhook_deliveries(webhook_id, id);

-- Every attempt of a delivery: when, the receiver's status (none: no answer), latency.
CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    status      INTEGER,
    latency_ms  INTEGER NOT NULL,
    error       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_attempts_of ON webhook_attempts(delivery_id);
