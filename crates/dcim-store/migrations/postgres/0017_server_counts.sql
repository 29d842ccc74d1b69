-- How many servers there are of each combination of the fields the billing counts by:
-- configuration, state, owned or not, new or not, with a diagnostics error or not. The
-- trigger below keeps it in the same transaction as every write of a server. A count
-- whose filter names only these fields sums a few rows of it instead of reading every
-- server: the free servers per configuration, and the size of a page such as
-- `state EQ 'ok' AND owner_email IS null`. `configuration` is '' (and `configured` 0)
-- for a server without one.
CREATE TABLE server_counts (
    configured    BIGINT NOT NULL,
    configuration TEXT NOT NULL,
    state         TEXT NOT NULL,
    owned         BIGINT NOT NULL,
    is_new        BIGINT NOT NULL,
    diag_failed   BIGINT NOT NULL,
    servers       BIGINT NOT NULL,
    PRIMARY KEY (configured, configuration, state, owned, is_new, diag_failed)
);

INSERT INTO server_counts (configured, configuration, state, owned, is_new, diag_failed, servers)
SELECT (configuration IS NOT NULL)::int, COALESCE(configuration, ''), state, (owner_id IS NOT NULL)::int,
       is_new, (diag_error IS NOT NULL)::int, COUNT(*)
FROM servers
GROUP BY 1, 2, 3, 4, 5, 6;

CREATE FUNCTION server_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.configuration IS NOT DISTINCT FROM NEW.configuration
       AND OLD.state = NEW.state AND (OLD.owner_id IS NULL) = (NEW.owner_id IS NULL)
       AND OLD.is_new = NEW.is_new AND (OLD.diag_error IS NULL) = (NEW.diag_error IS NULL) THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        UPDATE server_counts SET servers = servers - 1
        WHERE configured = (OLD.configuration IS NOT NULL)::int
          AND configuration = COALESCE(OLD.configuration, '') AND state = OLD.state
          AND owned = (OLD.owner_id IS NOT NULL)::int AND is_new = OLD.is_new
          AND diag_failed = (OLD.diag_error IS NOT NULL)::int;
        DELETE FROM server_counts
        WHERE configured = (OLD.configuration IS NOT NULL)::int
          AND configuration = COALESCE(OLD.configuration, '') AND state = OLD.state
          AND owned = (OLD.owner_id IS NOT NULL)::int AND is_new = OLD.is_new
          AND diag_failed = (OLD.diag_error IS NOT NULL)::int AND servers = 0;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO server_counts (configured, configuration, state, owned, is_new, diag_failed, servers)
        VALUES ((NEW.configuration IS NOT NULL)::int, COALESCE(NEW.configuration, ''), NEW.state,
                (NEW.owner_id IS NOT NULL)::int, NEW.is_new, (NEW.diag_error IS NOT NULL)::int, 1)
        ON CONFLICT (configured, configuration, state, owned, is_new, diag_failed)
        DO UPDATE SET servers = server_counts.servers + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER server_counts_follow
AFTER INSERT OR DELETE OR UPDATE OF configuration, state, owner_id, is_new, diag_error ON servers
FOR EACH ROW EXECUTE FUNCTION server_counts_follow();
