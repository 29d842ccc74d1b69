-- Failed logins (and one-time key tries) per account and per client address, shared by
-- every dcim process of the database: `key` is `a:EMAIL`, `i:ADDRESS` or `k:ADDRESS`;
-- `count` failures since `since` (unix milliseconds), the start of the window.
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    since BIGINT NOT NULL
);
