-- How many servers there are of each combination of the fields the billing counts by:
-- configuration, state, owned or not, new or not, with a diagnostics error or not. The
-- triggers below keep it in the same transaction as every write of a server. A count
-- whose filter names only these fields sums a few rows of it instead of reading every
-- server: the free servers per configuration, and the size of a page such as
-- `state EQ 'ok' AND owner_email IS null`. `configuration` is '' (and `configured` 0)
-- for a server without one.
CREATE TABLE server_counts (
    configured    INTEGER NOT NULL,
    configuration TEXT NOT NULL,
    state         TEXT NOT NULL,
    owned         INTEGER NOT NULL,
    is_new        INTEGER NOT NULL,
    diag_failed   INTEGER NOT NULL,
    servers       INTEGER NOT NULL,
    PRIMARY KEY (configured, configuration, state, owned, is_new, diag_failed)
);

INSERT INTO server_counts (configured, configuration, state, owned, is_new, diag_failed, servers)
SELECT configuration IS NOT NULL, COALESCE(configuration, ''), state, owner_id IS NOT NULL, is_new,
       diag_error IS NOT NULL, COUNT(*)
FROM servers
GROUP BY configuration IS NOT NULL, COALESCE(configuration, ''), state, owner_id IS NOT NULL, is_new,
         diag_error IS NOT NULL;

CREATE TRIGGER server_counts_insert AFTER INSERT ON servers
BEGIN
    INSERT INTO server_counts (configured, configuration, state, owned, is_new, diag_failed, servers)
    VALUES (NEW.configuration IS NOT NULL, COALESCE(NEW.configuration, ''), NEW.state,
            NEW.owner_id IS NOT NULL, NEW.is_new, NEW.diag_error IS NOT NULL, 1)
    ON CONFLICT (configured, configuration, state, owned, is_new, diag_failed)
    DO UPDATE SET servers = servers + 1;
END;

CREATE TRIGGER server_counts_delete AFTER DELETE ON servers
BEGIN
    UPDATE server_counts SET servers = servers - 1
    WHERE configured = (OLD.configuration IS NOT NULL) AND configuration = COALESCE(OLD.configuration, '')
      AND state = OLD.state AND owned = (OLD.owner_id IS NOT NULL) AND is_new = OLD.is_new
      AND diag_failed = (OLD.diag_error IS NOT NULL);
    DELETE FROM server_counts
    WHERE configured = (OLD.configuration IS NOT NULL) AND configuration = COALESCE(OLD.configuration, '')
      AND state = OLD.state AND owned = (OLD.owner_id IS NOT NULL) AND is_new = OLD.is_new
      AND diag_failed = (OLD.diag_error IS NOT NULL) AND servers = 0;
END;

CREATE TRIGGER server_counts_update AFTER UPDATE OF configuration, state, owner_id, is_new, diag_error ON servers
WHEN OLD.configuration IS NOT NEW.configuration OR OLD.state IS NOT NEW.state
  OR (OLD.owner_id IS NULL) IS NOT (NEW.owner_id IS NULL) OR OLD.is_new IS NOT NEW.is_new
  OR (OLD.diag_error IS NULL) IS NOT (NEW.diag_error IS NULL)
BEGIN
    UPDATE server_counts SET servers = servers - 1
    WHERE configured = (OLD.configuration IS NOT NULL) AND configuration = COALESCE(OLD.configuration, '')
      AND state = OLD.state AND owned = (OLD.owner_id IS NOT NULL) AND is_new = OLD.is_new
      AND diag_failed = (OLD.diag_error IS NOT NULL);
    DELETE FROM server_counts
    WHERE configured = (OLD.configuration IS NOT NULL) AND configuration = COALESCE(OLD.configuration, '')
      AND state = OLD.state AND owned = (OLD.owner_id IS NOT NULL) AND is_new = OLD.is_new
      AND diag_failed = (OLD.diag_error IS NOT NULL) AND servers = 0;
    INSERT INTO server_counts (configured, configuration, state, owned, is_new, diag_failed, servers)
    VALUES (NEW.configuration IS NOT NULL, COALESCE(NEW.configuration, ''), NEW.state,
            NEW.owner_id IS NOT NULL, NEW.is_new, NEW.diag_error IS NOT NULL, 1)
    ON CONFLICT (configured, configuration, state, owned, is_new, diag_failed)
    DO UPDATE SET servers = servers + 1;
END;
