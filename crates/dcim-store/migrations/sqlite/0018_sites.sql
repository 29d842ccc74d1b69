-- Remote sites: `dcim site` processes in other data centers, each serving some
-- locations. A site enrolls with a one-time secret an admin is given, exchanging it
-- for a long-lived credential; both are kept as SHA-256 digests only. The central's
-- calls to devices of a site's locations wait in `site_calls` until the site takes
-- them over its link, and their answers come back there.
CREATE TABLE sites (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT NOT NULL UNIQUE,
    description        TEXT NOT NULL DEFAULT '',
    -- the one-time enrollment secret's digest, until it is exchanged or expires
    enrollment_hash    TEXT UNIQUE,
    enrollment_expires INTEGER,
    -- the credential's digest; NULL before enrollment and once revoked
    credential_hash    TEXT UNIQUE,
    created_at         INTEGER NOT NULL,
    enrolled_at        INTEGER,
    -- the link (unix seconds): since when it is up, when the site last polled
    connected_since    INTEGER,
    last_seen          INTEGER,
    -- what the site said of itself at its last poll
    version            TEXT NOT NULL DEFAULT '',
    protocol           TEXT NOT NULL DEFAULT '',
    address            TEXT NOT NULL DEFAULT '',
    last_error         TEXT NOT NULL DEFAULT '',
    -- the name the site's process picked when it started: a new one means the site
    -- restarted, and the network boots it held are gone
    instance           TEXT NOT NULL DEFAULT ''
);

-- A location is served by one site at most; a location no site serves is reached directly.
CREATE TABLE site_locations (
    location_id INTEGER PRIMARY KEY REFERENCES locations(id) ON DELETE CASCADE,
    site_id     INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE
);
CREATE INDEX site_locations_site ON site_locations(site_id);

-- Calls waiting for a site, taken by it, and answered (times in unix milliseconds).
CREATE TABLE site_calls (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id     INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    location_id INTEGER NOT NULL,
    op          TEXT NOT NULL,
    -- an action of a task's step: the same key joins the same call (a resumed task)
    call_key    TEXT UNIQUE,
    -- the call with the device's credentials: sealed like every secret at rest
    body        TEXT NOT NULL,
    created     INTEGER NOT NULL,
    deadline    INTEGER NOT NULL,
    taken_at    INTEGER,
    answer      TEXT,
    answered_at INTEGER
);
CREATE INDEX site_calls_waiting ON site_calls(site_id, id) WHERE taken_at IS NULL;
CREATE INDEX site_calls_deadline ON site_calls(deadline);
