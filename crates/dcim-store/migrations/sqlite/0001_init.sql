-- dcim schema, SQLite dialect. Keep in step with ../postgres/0001_init.sql:
-- same tables, columns and constraints; only the types differ.
-- Booleans are INTEGER 0/1 and times are unix seconds, in both dialects.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    email           TEXT NOT NULL UNIQUE,
    full_name       TEXT NOT NULL DEFAULT '',
    phone_number    TEXT NOT NULL DEFAULT '',
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('@admin', '@user')),
    blocked         INTEGER NOT NULL DEFAULT 0,
    vlans_per_user  INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
);

CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash  TEXT NOT NULL UNIQUE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE auth_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key_hash    TEXT NOT NULL UNIQUE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE locations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    geolocation TEXT NOT NULL DEFAULT '',
    userspace   INTEGER
);

CREATE TABLE racks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    location_id INTEGER NOT NULL REFERENCES locations(id),
    size        INTEGER NOT NULL CHECK (size > 0),
    UNIQUE (location_id, name)
);

CREATE TABLE switches (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    location_id INTEGER NOT NULL REFERENCES locations(id),
    ip          TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    snmp        TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE switch_ports (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    switch_id    INTEGER NOT NULL REFERENCES switches(id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    admin_status TEXT NOT NULL DEFAULT 'unknown',
    oper_status  TEXT NOT NULL DEFAULT 'unknown',
    speed        INTEGER,
    UNIQUE (switch_id, idx)
);

CREATE TABLE pdus (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    location_id INTEGER NOT NULL REFERENCES locations(id),
    ip          TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    model       TEXT NOT NULL,
    snmp        TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE pdu_ports (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    pdu_id       INTEGER NOT NULL REFERENCES pdus(id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    name         TEXT NOT NULL,
    power_status TEXT NOT NULL DEFAULT 'unknown',
    UNIQUE (pdu_id, idx)
);

CREATE TABLE os_templates (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL CHECK (type IN ('os', 'diag', 'rescue')),
    tags        TEXT NOT NULL DEFAULT '[]',
    efi         INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE servers (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    name                    TEXT NOT NULL UNIQUE,
    location_id             INTEGER NOT NULL REFERENCES locations(id),
    rack_id                 INTEGER REFERENCES racks(id),
    unit                    INTEGER,
    mac                     TEXT UNIQUE,
    domain                  TEXT NOT NULL DEFAULT '',
    ipmi_address            TEXT,
    ipmi_type               TEXT,
    ipmi_user               TEXT,
    ipmi_password           TEXT,
    ipmi_web_url            TEXT,
    ipmi_status             TEXT NOT NULL DEFAULT 'unknown',
    ipmi_status_info        TEXT NOT NULL DEFAULT '{}',
    power_status            TEXT NOT NULL DEFAULT 'unknown',
    state                   TEXT NOT NULL DEFAULT 'ok',
    state_info              TEXT NOT NULL DEFAULT '',
    hardware_info           TEXT NOT NULL DEFAULT '{}',
    generated_configuration TEXT,
    custom_configuration    TEXT,
    configuration           TEXT,
    is_new                  INTEGER NOT NULL DEFAULT 1,
    diag_error              TEXT,
    owner_id                INTEGER REFERENCES users(id),
    os_template_id          INTEGER REFERENCES os_templates(id),
    efi                     INTEGER NOT NULL DEFAULT 1,
    created_at              INTEGER NOT NULL
);
CREATE INDEX servers_owner ON servers(owner_id);
-- Covers the free-server count per configuration, so it never reads the wide rows.
CREATE INDEX servers_configuration ON servers(configuration, owner_id, is_new, state, diag_error);
CREATE INDEX servers_location ON servers(location_id);
CREATE UNIQUE INDEX servers_rack_unit ON servers(rack_id, unit);

CREATE TABLE switch_connections (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id              INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    port_id                INTEGER NOT NULL UNIQUE REFERENCES switch_ports(id),
    is_ipmi_connection     INTEGER NOT NULL DEFAULT 0,
    do_not_collect_traffic INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX switch_connections_server ON switch_connections(server_id);

CREATE TABLE pdu_connections (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    port_id   INTEGER NOT NULL UNIQUE REFERENCES pdu_ports(id)
);
CREATE INDEX pdu_connections_server ON pdu_connections(server_id);
