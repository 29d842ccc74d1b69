-- IP address management. Keep in step with ../postgres/0003_ipam.sql.
-- Addresses are also stored as keys: fixed-width hex of the address's number
-- (8 digits for IPv4, 32 for IPv6), so text order is numeric order in a family.

CREATE TABLE ipnets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    family      INTEGER NOT NULL CHECK (family IN (2, 10)),
    prefix      INTEGER NOT NULL,
    first_key   TEXT NOT NULL,
    last_key    TEXT NOT NULL,
    gateway     TEXT NOT NULL DEFAULT '',
    vlan        TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT '',
    userspace   INTEGER NOT NULL DEFAULT 1,
    -- Next offset from the network address that network-wide allocation tries.
    next_offset INTEGER NOT NULL DEFAULT 0,
    UNIQUE (userspace, name)
);

CREATE TABLE ippools (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    name      TEXT NOT NULL UNIQUE,
    note      TEXT NOT NULL DEFAULT '',
    is_public INTEGER NOT NULL DEFAULT 0,
    userspace INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE ippool_ranges (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    pool_id     INTEGER NOT NULL REFERENCES ippools(id) ON DELETE CASCADE,
    ipnet_id    INTEGER NOT NULL REFERENCES ipnets(id),
    start_key   TEXT NOT NULL,
    end_key     TEXT NOT NULL,
    -- Next offset from start_key that pool allocation tries.
    next_offset INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ippool_ranges_pool ON ippool_ranges(pool_id);

CREATE TABLE ips (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ipnet_id    INTEGER NOT NULL REFERENCES ipnets(id),
    pool_id     INTEGER REFERENCES ippools(id),
    range_id    INTEGER,
    server_id   INTEGER REFERENCES servers(id),
    name        TEXT NOT NULL,
    addr_key    TEXT NOT NULL,
    family      INTEGER NOT NULL,
    domain      TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL DEFAULT 'allocating',
    status_info TEXT NOT NULL DEFAULT '{}',
    created     INTEGER NOT NULL,
    -- No address is ever handed out twice: the database holds it.
    UNIQUE (ipnet_id, addr_key)
);
CREATE INDEX ips_server ON ips(server_id);
CREATE INDEX ips_pool ON ips(pool_id);
-- The order addresses are listed in.
CREATE INDEX ips_order ON ips(family, addr_key);

-- Released addresses, offered again before the cursors move on.
CREATE TABLE ip_free (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    ipnet_id INTEGER NOT NULL REFERENCES ipnets(id) ON DELETE CASCADE,
    range_id INTEGER,
    addr_key TEXT NOT NULL,
    UNIQUE (ipnet_id, addr_key)
);
CREATE INDEX ip_free_range ON ip_free(range_id, addr_key);

ALTER TABLE servers ADD COLUMN main_ipv4 INTEGER;
ALTER TABLE servers ADD COLUMN main_ipv6 INTEGER;
