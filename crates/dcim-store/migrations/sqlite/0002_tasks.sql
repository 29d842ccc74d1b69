-- Tasks (operations) and the reports of in-band agents. Keep in step with
-- ../postgres/0002_tasks.sql. Lease and schedule times are unix milliseconds.

CREATE TABLE tasks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id     INTEGER REFERENCES servers(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'complete', 'fail', 'canceled')),
    params        TEXT NOT NULL DEFAULT '{}',
    steps         TEXT NOT NULL DEFAULT '[]',
    step          INTEGER NOT NULL DEFAULT 0,
    attempt       INTEGER NOT NULL DEFAULT 0,
    recoveries    INTEGER NOT NULL DEFAULT 0,
    progress      INTEGER NOT NULL DEFAULT 0,
    progress_info TEXT NOT NULL DEFAULT '[]',
    status_info   TEXT NOT NULL DEFAULT '{}',
    memo          TEXT NOT NULL DEFAULT '{}',
    secret_hash   TEXT,
    cancel        INTEGER NOT NULL DEFAULT 0,
    -- 1: holds the server (power, suspend, OS...); 0: runs beside others (IP changes).
    exclusive     INTEGER NOT NULL DEFAULT 1,
    not_before    INTEGER NOT NULL DEFAULT 0,
    lease_owner   TEXT,
    lease_until   INTEGER,
    created       INTEGER NOT NULL,
    started       INTEGER,
    finished      INTEGER
);
-- One exclusive operation per server, held by the database.
CREATE UNIQUE INDEX tasks_one_active ON tasks(server_id) WHERE exclusive = 1 AND status IN ('pending', 'running');
CREATE INDEX tasks_runnable ON tasks(not_before) WHERE status IN ('pending', 'running');
CREATE INDEX tasks_server ON tasks(server_id);

CREATE TABLE task_reports (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id  INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    kind     TEXT NOT NULL,
    data     TEXT NOT NULL DEFAULT '{}',
    created  INTEGER NOT NULL
);
CREATE INDEX task_reports_task ON task_reports(task_id);

-- The server's current or last operation.
ALTER TABLE servers ADD COLUMN last_task_id INTEGER;
