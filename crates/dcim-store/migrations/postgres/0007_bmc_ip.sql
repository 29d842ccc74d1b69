-- What an address is for: 'server' (the server's own, listed under /server/{id}/ip) or
-- 'ipmi' (its BMC's, given from a diagnostics' ipmi_pool by setup_ipmi). A BMC address
-- belongs to the server like its own (the server cannot be deleted while it has one) but
-- is not one of the addresses a customer's server is given.
ALTER TABLE ips ADD COLUMN purpose TEXT NOT NULL DEFAULT 'server';
