-- IPmanager 6 as ISPsystem publishes it: userspaces, a network's need_reserve, and per
-- address its IPmanager status, note, lock and history.

CREATE TABLE userspaces (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    note        TEXT NOT NULL DEFAULT '',
    is_public   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL DEFAULT 0
);
-- The userspace every network, pool and location had so far.
INSERT INTO userspaces (id, note, is_public, created_at) VALUES (1, 'public', 1, 0);

ALTER TABLE ipnets ADD COLUMN need_reserve INTEGER NOT NULL DEFAULT 1;

-- IPmanager's own status of an address (busy, special, locked, problem, service,
-- extended, dnsbl, deleted), beside `status`, the DCImanager task state of a server's
-- address. Addresses IPmanager gives out without a server have purpose 'ipmgr'.
ALTER TABLE ips ADD COLUMN ipm_status TEXT NOT NULL DEFAULT 'busy';
ALTER TABLE ips ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE ips ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;

-- What happened to an address: created (old is null), edited, deleted (new is null).
CREATE TABLE ip_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    userspace   INTEGER NOT NULL,
    name        TEXT NOT NULL,
    reference   INTEGER,
    created_at  INTEGER NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX ip_history_name ON ip_history(userspace, name);
