-- The audit trail: one record per state-changing request, written in the transaction of
-- the change it records (or alone, when the request failed or changed nothing), and one
-- per finished task. No foreign keys: a record outlives the user, server or token it
-- names.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    -- who: the user, its e-mail and role then, the client address and the session or
    -- token the request came with (none for a login, an agent or the system)
    user_id     INTEGER,
    email       TEXT NOT NULL DEFAULT '',
    role        TEXT NOT NULL DEFAULT '',
    address     TEXT NOT NULL DEFAULT '',
    token_id    INTEGER,
    request_id  TEXT NOT NULL DEFAULT '',
    -- what: the operation id of the OpenAPI document (ui.ACTION for the web UI)
    action      TEXT NOT NULL,
    method      TEXT NOT NULL DEFAULT '',
    route       TEXT NOT NULL DEFAULT '',
    target_kind TEXT NOT NULL DEFAULT '',
    target_id   TEXT NOT NULL DEFAULT '',
    -- the server the record belongs to, for its history; the task it started or ended
    server_id   INTEGER,
    task_id     INTEGER,
    -- 'ok' or 'error', the HTTP status, DCImanager's error code and message
    result      TEXT NOT NULL CHECK (result IN ('ok', 'error')),
    status      INTEGER NOT NULL DEFAULT 0,
    error_code  INTEGER,
    error_msg   TEXT NOT NULL DEFAULT '',
    -- for edits: {"field": {"before": ..., "after": ...}}, secrets redacted
    changes     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_at ON audit(at);
CREATE INDEX audit_server ON audit(server_id, id);

-- Since when the current owner has had the server: its history shows a customer
-- nothing from before.
ALTER TABLE servers ADD COLUMN owner_since INTEGER;
UPDATE servers SET owner_since = CAST(strftime('%s', 'now') AS INTEGER) WHERE owner_id IS NOT NULL;
