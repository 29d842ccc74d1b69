-- An OS template that deploys an image: the raw disk image the in-band agent
-- writes, and its SHA-256 (hex) the agent checks before it reports the install.
-- Both null for templates without an image (diagnostics, rescue, or not yet set).
ALTER TABLE os_templates ADD COLUMN image_url TEXT;
ALTER TABLE os_templates ADD COLUMN image_sha256 TEXT;
