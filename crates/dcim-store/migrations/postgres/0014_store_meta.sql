-- Facts about the database itself; `secret_key_id` names the key its secrets are
-- sealed with (see dcim-store's seal module).
CREATE TABLE store_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
