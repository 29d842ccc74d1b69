-- Keep in step with ../sqlite/0010_server_fields.sql.
ALTER TABLE servers ADD COLUMN barcode TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN serial_number TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN model TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN user_note TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN platform_name TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN size BIGINT NOT NULL DEFAULT 1;
ALTER TABLE servers ADD COLUMN uuid TEXT;
UPDATE servers SET uuid = gen_random_uuid()::text;
CREATE UNIQUE INDEX servers_uuid ON servers(uuid);
CREATE INDEX servers_rack ON servers(rack_id, unit);
