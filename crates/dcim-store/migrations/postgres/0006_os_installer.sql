-- An OS template that boots a distribution's installer instead of writing an image:
-- the installer's kind (kickstart, preseed or autoinstall), the http(s) URLs of its
-- kernel and initrd, and optionally the answer-file text with {{placeholders}}
-- (null: dcim renders its built-in default for the kind). All null for other templates;
-- a template has an image or an installer, not both (checked by the API).
ALTER TABLE os_templates ADD COLUMN installer TEXT;
ALTER TABLE os_templates ADD COLUMN installer_kernel TEXT;
ALTER TABLE os_templates ADD COLUMN installer_initrd TEXT;
ALTER TABLE os_templates ADD COLUMN installer_template TEXT;
