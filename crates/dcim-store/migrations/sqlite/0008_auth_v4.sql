-- Auth v4 as ISPsystem publishes it: the user's own settings, long-lived tokens,
-- two-factor authentication (TOTP), SSH keys and blocking dependencies ("locks").

-- The user's external id, interface language and time zone (GET/POST /auth/v4/self).
ALTER TABLE users ADD COLUMN uuid TEXT;
UPDATE users SET uuid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
    || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1)
    || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)));
CREATE UNIQUE INDEX users_uuid ON users(uuid);
ALTER TABLE users ADD COLUMN lang TEXT NOT NULL DEFAULT 'en';
ALTER TABLE users ADD COLUMN timezone TEXT NOT NULL DEFAULT '';
-- TOTP: the base32 secret (NULL while two-factor authentication is off) and the last
-- time step a code was accepted for, so a code works once.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;

-- A session of a user with two-factor authentication starts unconfirmed: it serves no
-- request until POST /auth/v4/public/token/confirm gives a code. A long-lived token
-- (POST /auth/v4/token) has a description and an expiry instead of the idle limit.
ALTER TABLE sessions ADD COLUMN confirmed INTEGER NOT NULL DEFAULT 1;
ALTER TABLE sessions ADD COLUMN confirm_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN expires_at INTEGER;
ALTER TABLE sessions ADD COLUMN description TEXT;

-- Reserve codes of two-factor authentication: SHA-256 hashes, each good once.
CREATE TABLE user_reserve_codes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    UNIQUE (user_id, code_hash)
);

-- Blocking dependencies: a user with one cannot be deleted.
CREATE TABLE user_locks (
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    service     TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, service)
);

CREATE TABLE user_ssh_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    ssh_pub_key TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX user_ssh_keys_user ON user_ssh_keys(user_id);
