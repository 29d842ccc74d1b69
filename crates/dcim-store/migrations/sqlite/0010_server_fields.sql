-- The fields DCImanager 6's clients read on a server: inventory labels, notes (the
-- customer's own `user_note`), an external uuid, and the platform with its height in
-- rack units. A server without a rack is in its location's warehouse.
ALTER TABLE servers ADD COLUMN barcode TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN serial_number TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN model TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN user_note TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN platform_name TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN size INTEGER NOT NULL DEFAULT 1;
ALTER TABLE servers ADD COLUMN uuid TEXT;
UPDATE servers SET uuid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
    || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1)
    || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)));
CREATE UNIQUE INDEX servers_uuid ON servers(uuid);
CREATE INDEX servers_rack ON servers(rack_id, unit);
