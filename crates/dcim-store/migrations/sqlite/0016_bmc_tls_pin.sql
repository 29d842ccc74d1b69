-- A Redfish BMC's pinned certificate: the SHA-256 of its DER, 64 hexadecimal digits
-- (NULL: check it against the trusted CAs, as bmc_tls_verify says). Not a secret.
ALTER TABLE servers ADD COLUMN ipmi_tls_fingerprint TEXT;
