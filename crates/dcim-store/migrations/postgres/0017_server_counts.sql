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

-- Adds `delta` (1 or -1) to the servers of one combination; a row that reaches 0 goes.
CREATE FUNCTION server_counts_add(k_configured BIGINT, k_configuration TEXT, k_state TEXT, k_owned BIGINT,
                                  k_is_new BIGINT, k_diag_failed BIGINT, delta BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF delta > 0 THEN
        INSERT INTO server_counts (configured, configuration, state, owned, is_new, diag_failed, servers)
        VALUES (k_configured, k_configuration, k_state, k_owned, k_is_new, k_diag_failed, delta)
        ON CONFLICT (configured, configuration, state, owned, is_new, diag_failed)
        DO UPDATE SET servers = server_counts.servers + delta;
    ELSE
        UPDATE server_counts SET servers = servers + delta
        WHERE configured = k_configured AND configuration = k_configuration AND state = k_state
          AND owned = k_owned AND is_new = k_is_new AND diag_failed = k_diag_failed;
        DELETE FROM server_counts
        WHERE configured = k_configured AND configuration = k_configuration AND state = k_state
          AND owned = k_owned AND is_new = k_is_new AND diag_failed = k_diag_failed AND servers = 0;
    END IF;
END
$$;

CREATE FUNCTION server_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    o_configured BIGINT; o_configuration TEXT; o_state TEXT; o_owned BIGINT; o_is_new BIGINT; o_diag BIGINT;
    n_configured BIGINT; n_configuration TEXT; n_state TEXT; n_owned BIGINT; n_is_new BIGINT; n_diag BIGINT;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        o_configured := (OLD.configuration IS NOT NULL)::int;
        o_configuration := COALESCE(OLD.configuration, '');
        o_state := OLD.state;
        o_owned := (OLD.owner_id IS NOT NULL)::int;
        o_is_new := OLD.is_new;
        o_diag := (OLD.diag_error IS NOT NULL)::int;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        n_configured := (NEW.configuration IS NOT NULL)::int;
        n_configuration := COALESCE(NEW.configuration, '');
        n_state := NEW.state;
        n_owned := (NEW.owner_id IS NOT NULL)::int;
        n_is_new := NEW.is_new;
        n_diag := (NEW.diag_error IS NOT NULL)::int;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM server_counts_add(n_configured, n_configuration, n_state, n_owned, n_is_new, n_diag, 1);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM server_counts_add(o_configured, o_configuration, o_state, o_owned, o_is_new, o_diag, -1);
    ELSIF ROW(o_configured, o_configuration, o_state, o_owned, o_is_new, o_diag)
          = ROW(n_configured, n_configuration, n_state, n_owned, n_is_new, n_diag) THEN
        RETURN NULL;
    -- Two rows change: they are locked in the order of their keys, so two writes that
    -- move servers in opposite directions (an owner given here, another released
    -- there) never wait for each other in a cycle.
    ELSIF ROW(o_configured, o_configuration, o_state, o_owned, o_is_new, o_diag)
          < ROW(n_configured, n_configuration, n_state, n_owned, n_is_new, n_diag) THEN
        PERFORM server_counts_add(o_configured, o_configuration, o_state, o_owned, o_is_new, o_diag, -1);
        PERFORM server_counts_add(n_configured, n_configuration, n_state, n_owned, n_is_new, n_diag, 1);
    ELSE
        PERFORM server_counts_add(n_configured, n_configuration, n_state, n_owned, n_is_new, n_diag, 1);
        PERFORM server_counts_add(o_configured, o_configuration, o_state, o_owned, o_is_new, o_diag, -1);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER server_counts_follow
AFTER INSERT OR DELETE OR UPDATE OF configuration, state, owner_id, is_new, diag_error ON servers
FOR EACH ROW EXECUTE FUNCTION server_counts_follow();
