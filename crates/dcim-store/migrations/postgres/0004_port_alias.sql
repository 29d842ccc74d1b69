-- A switch port's configured description (SNMP ifAlias), read by sync alongside its
-- name (ifName) and interface description (ifDescr).
ALTER TABLE switch_ports ADD COLUMN alias TEXT NOT NULL DEFAULT '';
