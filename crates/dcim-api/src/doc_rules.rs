//! What a request's fields must hold, said in the OpenAPI document as JSON Schema, so
//! that a client (or a fuzzer) can tell a request dcim takes from one it refuses
//! without sending it.
//!
//! The handlers' validators are the law; [`RULES`] states them field by field, next to
//! the names of the validators they mirror. A string field with no rule gets the rule
//! every body's text obeys ([`Rule::Text`] without a length), so no string in the
//! document is looser than the server. Rules that join two fields or depend on what
//! is stored (an address inside its pool, a gateway inside its network, a template of
//! the right kind) cannot be said in JSON Schema; the routes answer them with a 422
//! naming the field, and the fuzzer's configuration (tests/fixtures/schemathesis.toml)
//! lists them by operation.
//!
//! This is written here because the rules are dcim's own: no crate knows them, and
//! utoipa's field attributes take literal patterns only, so shared ones (an address, a
//! line of text) would be copied onto every field.

use serde_json::{Value, json};

/// A field's rule.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// One line (`validate::line`): trimmed, no control character, at most N
    /// characters.
    Line(u32),
    /// One line that may not be blank (`validate::required_line`, `validate::name`
    /// with 128): 1 to N characters after trimming.
    RequiredLine(u32),
    /// Text that may span lines (`validate::note`, `validate::text`): no control
    /// character but tab, line feed and carriage return; at most N characters (0: no
    /// limit but the body's).
    Text(u32),
    /// One of these spellings.
    Enum(&'static [&'static str]),
    /// A string matching a regular expression (ECMA 262 and Python agree on it), at
    /// most N characters (0: no limit).
    Pattern(&'static str, u32),
    /// An integer from..=to.
    Range(i64, i64),
    /// Each item of a string array is one line of 1 to N characters.
    EachLine(u32),
    /// Each item of a string array is one of these.
    EachEnum(&'static [&'static str]),
    /// A schema written out.
    Schema(fn() -> Value),
}

/// Control characters as `validate::forbidden_control` sees them: C0, DEL and C1.
const CONTROL: &str = "\\x00-\\x1f\\x7f-\\x9f";
/// What trimming takes off a line's ends besides spaces other patterns allow.
const ENDS: &str = "[\\t\\n\\r ]*";
/// White space as Rust's `str::trim` sees it (Unicode White_Space; Python's `\s`
/// also takes U+001C to U+001F, which Rust does not trim).
const WS: &str = "[\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
/// The same, but tab, line feed and carriage return.
const CONTROL_BUT_BREAKS: &str = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f";

// The regular expressions of the rules. ECMA 262 and Python must read them alike, so
// they use no `\d` or `\w` (Unicode digits and letters in Python), and `\s` only where
// both engines' whitespace holds all that Rust's `trim` takes off. They are built with
// `concat!` from the pieces below; where the server takes more than a pattern can say
// exactly, the pattern is a subset of what it takes.

/// An IPv4 octet as `std` (and `ipnet`) read it, without the leading zeros `std` refuses.
macro_rules! octet {
    () => {
        "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    };
}

/// A dotted-quad IPv4 address, exactly as `std::net::Ipv4Addr` parses it.
macro_rules! ipv4 {
    () => {
        concat!(octet!(), "(\\.", octet!(), "){3}")
    };
}

/// A group of an IPv6 address.
macro_rules! h16 {
    () => {
        "[0-9A-Fa-f]{1,4}"
    };
}

/// An IPv6 address in the forms `std::net::Ipv6Addr` parses, but for a trailing
/// dotted-quad IPv4 part (`::ffff:192.0.2.1`), which `std` takes too.
macro_rules! ipv6 {
    () => {
        concat!(
            "((",
            h16!(),
            ":){7}",
            h16!(),
            "|(",
            h16!(),
            ":){1,7}:|(",
            h16!(),
            ":){1,6}:",
            h16!(),
            "|(",
            h16!(),
            ":){1,5}(:",
            h16!(),
            "){1,2}|(",
            h16!(),
            ":){1,4}(:",
            h16!(),
            "){1,3}|(",
            h16!(),
            ":){1,3}(:",
            h16!(),
            "){1,4}|(",
            h16!(),
            ":){1,2}(:",
            h16!(),
            "){1,5}|",
            h16!(),
            ":(:",
            h16!(),
            "){1,6}|:((:",
            h16!(),
            "){1,7}|:))"
        )
    };
}

/// An IPv4 or IPv6 address (`dcim_core::ip::parse_addr`).
macro_rules! ip {
    () => {
        concat!("(", ipv4!(), "|", ipv6!(), ")")
    };
}

/// A DNS label: 1 to 63 letters, digits and hyphens, no hyphen at either end.
macro_rules! label {
    () => {
        "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    };
}

/// A port, 1 to 65535, without leading zeros.
macro_rules! port {
    () => {
        "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
    };
}

/// The first character of an http(s) URL's host as `http_url` (routes/inventory.rs)
/// checks it: not `/`, `?`, `#` or `:`, and (as the rest) printable ASCII.
macro_rules! url_host_start {
    () => {
        "[\\x21\\x22\\x24-\\x2e\\x30-\\x39\\x3b-\\x3e\\x40-\\x7e]"
    };
}

/// `parse_addr`: one address (trimmed).
const IP_ADDRESS: &str = concat!("^", ip!(), "$");
/// `check_gateway`, `ip_name`, `IpCreate.name`: an address, or empty for none.
const IP_ADDRESS_OR_EMPTY: &str = concat!("^(", ip!(), ")?$");
/// `parse_range` (routes/ipmgr.rs): `first-last`, a CIDR (host bits may be set), or one
/// address; both ends of one family. That the range does not end before it starts is
/// the route's (422).
const IP_RANGE: &str = concat!(
    "^(",
    ipv4!(),
    "( *- *",
    ipv4!(),
    "|/(3[0-2]|[12]?[0-9]))?|",
    ipv6!(),
    "( *- *",
    ipv6!(),
    "|/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$"
);
/// `Mac::parse`: trimmed, `:` and `-` anywhere dropped, then 12 hex digits.
const MAC: &str = "^[\\t\\n\\r ]*[:-]*([0-9A-Fa-f][:-]*){12}[\\t\\n\\r ]*$";
/// `validate::domain_name`: empty, or dotted labels (one trailing dot taken off; the
/// server takes several, and surrounding whitespace).
const DOMAIN: &str = concat!("^(", label!(), "(\\.", label!(), ")*\\.?)?$");
/// `validate::device_address`: `host`, `host:port`, an IPv6 address, `[v6]:port`. The
/// server also takes a port with leading zeros or `+`, and `[v6]:0`.
const DEVICE_ADDRESS: &str =
    concat!("^(", label!(), "(\\.", label!(), ")*(:", port!(), ")?|", ipv6!(), "|\\[", ipv6!(), "\\]:", port!(), ")$");
/// `Email::parse`: a local part, `@`, a domain with a dot inside; printable ASCII here
/// (the server takes any character but whitespace and controls, and empty labels).
const EMAIL: &str =
    "^[\\x21-\\x3f\\x41-\\x7e]+@[\\x21-\\x2d\\x2f-\\x3f\\x41-\\x7e]+(\\.[\\x21-\\x2d\\x2f-\\x3f\\x41-\\x7e]+)+$";
/// `parse_auth_time` (humantime's `parse_rfc3339_weak`): `YYYY-MM-DD hh:mm:ss` (or `T`,
/// and a final `Z`), 1970 to 9999. The server also takes 29 February of leap years,
/// second 60, fractions and `+00:00`.
const TIME: &str = concat!(
    "^(19[7-9][0-9]|[2-9][0-9]{3})-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)",
    "|02-(0[1-9]|1[0-9]|2[0-8]))[ T]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z?$"
);
/// `totp::parse_secret`: 64 base32 characters, upper case, not trimmed (the length
/// keeps Python's `$` from taking a final line feed).
const TOTP_SECRET: &str = "^[A-Z2-7]{64}$";
/// An image's SHA-256 (`image`, routes/inventory.rs; trimmed).
const SHA256: &str = "^[0-9A-Fa-f]{64}$";
/// `http_url` (routes/inventory.rs): `http://` or `https://`, a host, no whitespace or
/// control character, at most 2048 bytes; printable ASCII here.
const HTTP_URL: &str = concat!("^https?://", url_host_start!(), "[\\x21-\\x7e]*$");
/// An image: one of dcim's own (`/images/FILE`) or an http(s) URL.
const IMAGE_URL: &str =
    concat!("^(/images/[A-Za-z0-9_-][A-Za-z0-9._-]*|https?://", url_host_start!(), "[\\x21-\\x7e]*)$");
/// A webhook's URL (`webhook_guard`): http(s) to an IPv4 address that is not
/// link-local, unspecified, multicast or broadcast, no user name, a path and a query of
/// characters `http::Uri` takes. The server also takes host names that resolve to such
/// addresses, IPv6 literals and more path characters; it refuses dcim's own listeners
/// (a relation with the configuration).
const WEBHOOK_URL: &str = concat!(
    "^https?://(([1-9]|[1-9][0-9]|1[0-5][0-9]|16[0-8]|1[7-9][0-9]|2[01][0-9]|22[0-3])\\.",
    octet!(),
    "|169\\.(25[0-35]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))\\.",
    octet!(),
    "\\.",
    octet!(),
    "(:",
    port!(),
    ")?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(\\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$"
);
/// A webhook's secret (`secret`, routes/webhooks.rs): one line, trimmed, 16 bytes to 256
/// characters; here 16 to 256 characters with no whitespace at the ends.
const WEBHOOK_SECRET: &str = "^[\\x21-\\x7e][^\\x00-\\x1f\\x7f-\\x9f]{14,254}[\\x21-\\x7e]$";
/// An OpenSSH public key (`ssh_key::PublicKey::from_openssh`): Ed25519 keys with a
/// printable ASCII comment. The server takes every key type ssh-key reads (RSA,
/// ECDSA, DSA, security keys) and any comment.
const SSH_KEY: &str = "^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-P][A-Za-z0-9+/]{42}( [\\x20-\\x7e]*)?$";
/// A certificate's SHA-256 (`fingerprint`, routes/servers.rs): 32 pairs of hexadecimal
/// digits with colons, or 64 bare; empty for none. The server also trims.
const FINGERPRINT: &str = "^(([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}|[0-9A-Fa-f]{64})?$";
/// ASCII only: one byte a character, for byte limits.
const ASCII: &str = "^[\\x00-\\x7f]*$";

/// `Role` (dcim-core model.rs; `parse_role` trims).
const ROLES: &[&str] = dcim_core::Role::NAMES;
/// `DeviceProtocol` (dcim-core model.rs).
const DEVICE_PROTOCOLS: &[&str] = dcim_core::DeviceProtocol::NAMES;
/// `BmcType` (dcim-core model.rs).
const BMC_TYPES: &[&str] = dcim_core::BmcType::NAMES;
/// `TemplateType` (dcim-core model.rs).
const TEMPLATE_TYPES: &[&str] = dcim_core::TemplateType::NAMES;
/// `InstallerKind` (dcim-core installer.rs; the route trims).
const INSTALLERS: &[&str] = &["kickstart", "preseed", "autoinstall"];
/// An address's status (routes/ipmgr.rs).
const IP_STATUSES: &[&str] = crate::routes::ipmgr::STATUSES;
/// An address family: empty (IPv4), `ipv4` or `ipv6` (the routes trim).
const FAMILIES: &[&str] = &["", "ipv4", "ipv6"];
/// `clear_mode` (routes/operations.rs).
const CLEAR_MODES: &[&str] = dcim_core::ClearMode::NAMES;
/// `raid_min_disks` (dcim-tasks ops.rs).
const RAIDS: &[&str] = dcim_core::RaidLevel::NAMES;
/// What an agent reports (routes/operations.rs).
const REPORT_KINDS: &[&str] = dcim_core::ReportKind::NAMES;

/// `(schema, property, rule)`: the schema is a component of the document.
pub const RULES: &[(&str, &str, Rule)] = &[
    // AgentReport: routes/operations.rs agent_report.
    ("AgentReport", "kind", Rule::Enum(REPORT_KINDS)),
    // BootDeviceRequest: routes/operations.rs boot_device.
    ("BootDeviceRequest", "device", Rule::Enum(&["pxe", "disk"])),
    // ClearHddRequest: routes/operations.rs operation_clear_hdd.
    ("ClearHddRequest", "clear_hdd", Rule::Enum(CLEAR_MODES)),
    // ConfirmRequest: routes/auth_v4.rs confirm_token (`token` and `reserve_code` are
    // looked up, not checked; a code out of range is a wrong code, 401).
    ("ConfirmRequest", "code", Rule::Range(0, 999_999)),
    // DelayRequest: routes/operations.rs fake_delay.
    ("DelayRequest", "ms", Rule::Range(0, 600_000)),
    // DeviceEdit: routes/inventory.rs edit_device.
    ("DeviceEdit", "ip", Rule::Pattern(DEVICE_ADDRESS, 253)),
    ("DeviceEdit", "name", Rule::RequiredLine(128)),
    // DiagRequest: routes/operations.rs operation_diag.
    ("DiagRequest", "clear_hdd", Rule::Enum(CLEAR_MODES)),
    // FakeHardwareRequest: routes/operations.rs fake_hardware.
    ("FakeHardwareRequest", "mac", Rule::Pattern(MAC, 0)),
    // FaultRequest: routes/operations.rs fake_fault (`device` and `message` are free text).
    ("FaultRequest", "op", Rule::Schema(fault_ops)),
    ("FaultRequest", "skip", Rule::Range(0, u32::MAX as i64)),
    ("FaultRequest", "times", Rule::Range(0, u32::MAX as i64)),
    // IpAllocate: routes/ipmgr.rs allocate_pool_ip.
    ("IpAllocate", "domain", Rule::Pattern(DOMAIN, 253)),
    ("IpAllocate", "family", Rule::Enum(FAMILIES)),
    ("IpAllocate", "ip_prefix", Rule::Schema(host_prefix)),
    ("IpAllocate", "note", Rule::Text(1024)),
    ("IpAllocate", "subnet_by_address", Rule::Schema(not_true)),
    // IpCreate: routes/ipmgr.rs create_ip, create_userspace_ip.
    ("IpCreate", "domain", Rule::Pattern(DOMAIN, 253)),
    ("IpCreate", "name", Rule::Pattern(IP_ADDRESS_OR_EMPTY, 0)),
    ("IpCreate", "note", Rule::Text(1024)),
    ("IpCreate", "status", Rule::Enum(IP_STATUSES)),
    // IpEdit: routes/ipmgr.rs edit_ip.
    ("IpEdit", "domain", Rule::Pattern(DOMAIN, 253)),
    ("IpEdit", "note", Rule::Text(1024)),
    ("IpEdit", "status", Rule::Enum(IP_STATUSES)),
    // IpRequest: routes/ip.rs allocate_ip.
    ("IpRequest", "domain", Rule::Pattern(DOMAIN, 253)),
    ("IpRequest", "family", Rule::Enum(FAMILIES)),
    ("IpRequest", "ip_name", Rule::Pattern(IP_ADDRESS_OR_EMPTY, 0)),
    // IpmiInput: routes/servers.rs bmc (`user`, `password` and `web_url` are free text;
    // a `redfish` BMC's address may also be an http(s) URL).
    ("IpmiInput", "tls_fingerprint", Rule::Pattern(FINGERPRINT, 0)),
    ("IpmiInput", "address", Rule::Pattern(DEVICE_ADDRESS, 253)),
    ("IpmiInput", "type", Rule::Enum(BMC_TYPES)),
    // IpnetEdit: routes/ip.rs edit_ipnet.
    ("IpnetEdit", "gateway", Rule::Pattern(IP_ADDRESS_OR_EMPTY, 0)),
    ("IpnetEdit", "name", Rule::Schema(network)),
    ("IpnetEdit", "note", Rule::Text(1024)),
    ("IpnetEdit", "vlan", Rule::Line(64)),
    // IppoolEdit: routes/ip.rs edit_pool.
    ("IppoolEdit", "name", Rule::RequiredLine(128)),
    ("IppoolEdit", "note", Rule::Text(1024)),
    // LinkPoll: routes/sites.rs link_poll.
    ("LinkPoll", "instance", Rule::Line(64)),
    ("LinkPoll", "max", Rule::Range(1, 256)),
    // LocationInput: routes/inventory.rs create_location, edit_location.
    ("LocationInput", "geolocation", Rule::Line(256)),
    ("LocationInput", "name", Rule::RequiredLine(128)),
    // LockRequest: routes/auth_v4_self.rs lock_user.
    ("LockRequest", "description", Rule::Line(255)),
    ("LockRequest", "service", Rule::RequiredLine(128)),
    // LoginRequest, KeyLoginRequest: routes/auth_v4.rs login, login_by_key compare, not check.
    // NewDevice: routes/inventory.rs create_device (`model` depends on the kind and protocol).
    ("NewDevice", "ip", Rule::Pattern(DEVICE_ADDRESS, 253)),
    ("NewDevice", "name", Rule::RequiredLine(128)),
    ("NewDevice", "protocol", Rule::Enum(DEVICE_PROTOCOLS)),
    // NewIpnet: routes/ip.rs create_network.
    ("NewIpnet", "gateway", Rule::Pattern(IP_ADDRESS_OR_EMPTY, 0)),
    ("NewIpnet", "name", Rule::Schema(network)),
    ("NewIpnet", "note", Rule::Text(1024)),
    ("NewIpnet", "vlan", Rule::Line(64)),
    // NewIppool: routes/ip.rs create_pool.
    ("NewIppool", "name", Rule::RequiredLine(128)),
    ("NewIppool", "note", Rule::Text(1024)),
    ("NewIppool", "ranges", Rule::Schema(at_least_one)),
    // NewOsTemplate: routes/inventory.rs create_os_template.
    ("NewOsTemplate", "image_sha256", Rule::Pattern(SHA256, 0)),
    ("NewOsTemplate", "image_url", Rule::Pattern(IMAGE_URL, 2048)),
    ("NewOsTemplate", "installer", Rule::Enum(INSTALLERS)),
    ("NewOsTemplate", "installer_initrd", Rule::Pattern(HTTP_URL, 2048)),
    ("NewOsTemplate", "installer_kernel", Rule::Pattern(HTTP_URL, 2048)),
    ("NewOsTemplate", "installer_template", Rule::Schema(answer_file)),
    ("NewOsTemplate", "name", Rule::RequiredLine(128)),
    ("NewOsTemplate", "tags", Rule::Schema(tags)),
    ("NewOsTemplate", "type", Rule::Enum(TEMPLATE_TYPES)),
    // NewRack: routes/inventory.rs create_rack.
    ("NewRack", "name", Rule::RequiredLine(128)),
    ("NewRack", "size", Rule::Range(1, 100)),
    // NewServer: routes/servers.rs create_server.
    ("NewServer", "barcode", Rule::Line(128)),
    ("NewServer", "domain", Rule::Pattern(DOMAIN, 253)),
    ("NewServer", "mac", Rule::Pattern(MAC, 0)),
    ("NewServer", "model", Rule::Line(128)),
    ("NewServer", "name", Rule::RequiredLine(128)),
    ("NewServer", "note", Rule::Text(4096)),
    ("NewServer", "serial_number", Rule::Line(128)),
    ("NewServer", "user_note", Rule::Text(4096)),
    // NewSshKey: routes/auth_v4_self.rs create_self_ssh_key.
    ("NewSshKey", "name", Rule::RequiredLine(255)),
    ("NewSshKey", "ssh_pub_key", Rule::Pattern(SSH_KEY, 16 * 1024)),
    // NewTokenRequest: routes/auth_v4.rs create_token.
    ("NewTokenRequest", "description", Rule::Line(255)),
    ("NewTokenRequest", "expires_at", Rule::Pattern(TIME, 0)),
    // NewUser: routes/users.rs create_user.
    ("NewUser", "email", Rule::Pattern(EMAIL, 254)),
    ("NewUser", "full_name", Rule::Line(256)),
    ("NewUser", "password", Rule::Schema(password)),
    ("NewUser", "phone_number", Rule::Line(64)),
    ("NewUser", "role", Rule::Enum(ROLES)),
    ("NewUser", "vlans_per_user", Rule::Range(0, 4094)),
    // OsRequest: routes/operations.rs operation_os.
    ("OsRequest", "hdd_raid", Rule::Enum(RAIDS)),
    ("OsRequest", "hostname", Rule::Pattern(DOMAIN, 253)),
    ("OsRequest", "password", Rule::Schema(os_password)),
    ("OsRequest", "ssh_pub_keys", Rule::Schema(ssh_keys)),
    // OsTemplateEdit: routes/inventory.rs edit_os_template.
    ("OsTemplateEdit", "image_sha256", Rule::Pattern(SHA256, 0)),
    ("OsTemplateEdit", "image_url", Rule::Pattern(IMAGE_URL, 2048)),
    ("OsTemplateEdit", "installer", Rule::Enum(INSTALLERS)),
    ("OsTemplateEdit", "installer_initrd", Rule::Pattern(HTTP_URL, 2048)),
    ("OsTemplateEdit", "installer_kernel", Rule::Pattern(HTTP_URL, 2048)),
    ("OsTemplateEdit", "installer_template", Rule::Schema(answer_file)),
    ("OsTemplateEdit", "name", Rule::RequiredLine(128)),
    ("OsTemplateEdit", "tags", Rule::Schema(tags)),
    // PlatformInput: routes/servers.rs platform.
    ("PlatformInput", "name", Rule::Line(128)),
    ("PlatformInput", "size", Rule::Range(1, 64)),
    // PoolRange: routes/ip.rs create_pool.
    ("PoolRange", "end", Rule::Pattern(IP_ADDRESS, 0)),
    ("PoolRange", "start", Rule::Pattern(IP_ADDRESS, 0)),
    // QrRequest: routes/auth_v4.rs qrcode.
    ("QrRequest", "name", Rule::Schema(qr_name)),
    ("QrRequest", "recovery", Rule::Enum(&["low", "medium", "high", "highest"])),
    ("QrRequest", "secret", Rule::Pattern(TOTP_SECRET, 64)),
    ("QrRequest", "size", Rule::Range(177, 1024)),
    // RackEdit: routes/inventory.rs edit_rack.
    ("RackEdit", "name", Rule::RequiredLine(128)),
    ("RackEdit", "size", Rule::Range(1, 100)),
    // RangeBody: routes/ipmgr.rs create_range, edit_range.
    ("RangeBody", "name", Rule::Pattern(IP_RANGE, 0)),
    // SelfEdit: routes/auth_v4_self.rs edit_self.
    ("SelfEdit", "full_name", Rule::Line(255)),
    ("SelfEdit", "lang", Rule::Enum(&["en", "ru"])),
    ("SelfEdit", "timezone", Rule::Schema(timezone)),
    // SelfPassword: routes/auth_v4_self.rs self_password (`old_password` is compared).
    ("SelfPassword", "password", Rule::Schema(password)),
    // ServerEdit: routes/servers.rs edit_server (`configuration` is free text).
    ("ServerEdit", "barcode", Rule::Line(128)),
    ("ServerEdit", "domain", Rule::Pattern(DOMAIN, 253)),
    ("ServerEdit", "mac", Rule::Pattern(MAC, 0)),
    ("ServerEdit", "model", Rule::Line(128)),
    ("ServerEdit", "name", Rule::RequiredLine(128)),
    ("ServerEdit", "note", Rule::Text(4096)),
    ("ServerEdit", "serial_number", Rule::Line(128)),
    ("ServerEdit", "user_note", Rule::Text(4096)),
    // Setup2fa: routes/auth_v4.rs setup_2fa.
    ("Setup2fa", "code", Rule::Range(0, 999_999)),
    ("Setup2fa", "secret", Rule::Pattern(TOTP_SECRET, 64)),
    // SiteInput: routes/sites.rs create_site, edit_site.
    ("SiteInput", "description", Rule::Line(256)),
    ("SiteInput", "name", Rule::RequiredLine(128)),
    // SnmpInput: routes/inventory.rs snmp_secret (the other fields are free text).
    ("SnmpInput", "auth_protocol", Rule::Schema(snmp_auth_protocols)),
    ("SnmpInput", "priv_protocol", Rule::Schema(snmp_priv_protocols)),
    // SshKeyEdit: routes/auth_v4_self.rs edit_self_ssh_key.
    ("SshKeyEdit", "name", Rule::RequiredLine(255)),
    // UserEdit: routes/users.rs edit_user.
    ("UserEdit", "email", Rule::Pattern(EMAIL, 254)),
    ("UserEdit", "full_name", Rule::Line(256)),
    ("UserEdit", "password", Rule::Schema(password)),
    ("UserEdit", "phone_number", Rule::Line(64)),
    ("UserEdit", "role", Rule::Enum(ROLES)),
    ("UserEdit", "vlans_per_user", Rule::Range(0, 4094)),
    // UserPassword: routes/auth_v4_self.rs user_password.
    ("UserPassword", "password", Rule::Schema(password)),
    // UserspaceBody: routes/ipmgr.rs create_userspace, edit_userspace.
    ("UserspaceBody", "note", Rule::Text(1024)),
    // UserspacePool: routes/ipmgr.rs create_userspace_pool.
    ("UserspacePool", "name", Rule::RequiredLine(128)),
    ("UserspacePool", "note", Rule::Text(1024)),
    // WebhookInput: routes/webhooks.rs create_webhook, edit_webhook.
    ("WebhookInput", "description", Rule::Line(256)),
    ("WebhookInput", "events", Rule::Schema(webhook_events)),
    ("WebhookInput", "secret", Rule::Pattern(WEBHOOK_SECRET, 256)),
    ("WebhookInput", "url", Rule::Pattern(WEBHOOK_URL, 2048)),
];

impl Rule {
    /// The JSON Schema keywords of the rule, for a value of that field (a `null` the
    /// field allows is added by [`refine`]).
    fn keywords(self) -> Value {
        match self {
            Rule::Line(max) => json!({
                "maxLength": max,
                // Line breaks and tabs only at the ends, which are trimmed.
                "pattern": format!("^{ENDS}[^{CONTROL}]*{ENDS}$"),
            }),
            Rule::RequiredLine(max) => json!({
                "maxLength": max,
                "pattern": format!("^{ENDS}[^{CONTROL}]*[^\\s{CONTROL}][^{CONTROL}]*{ENDS}$"),
            }),
            Rule::Text(max) => {
                let mut v = json!({ "pattern": format!("^[^{CONTROL_BUT_BREAKS}]*$") });
                if max > 0 {
                    v["maxLength"] = max.into();
                }
                v
            }
            Rule::Enum(values) => json!({ "enum": values }),
            Rule::Pattern(p, max) => {
                let mut v = json!({ "pattern": p });
                if max > 0 {
                    v["maxLength"] = max.into();
                }
                v
            }
            Rule::Range(from, to) => json!({ "minimum": from, "maximum": to }),
            Rule::EachLine(max) => {
                let mut items = Rule::RequiredLine(max).keywords();
                items["type"] = "string".into();
                json!({ "items": items })
            }
            Rule::EachEnum(values) => json!({ "items": { "type": "string", "enum": values } }),
            Rule::Schema(f) => f(),
        }
    }
}

/// Applies [`RULES`] to the document's request schemas, gives every other string
/// field of a request the body's text rule, and marks a request body optional where
/// no field is required (an empty body reads as `{}`).
pub fn refine(doc: &mut Value) {
    add_component_rules(doc);
    for (method, path, schema) in BODIES {
        *body_schema(doc, method, path) = json!({ "$ref": format!("#/components/schemas/{schema}") });
    }
    for create in CREATES {
        derive_create(doc, create);
    }
    let requests = request_schemas(doc);
    apply_field_rules(doc, &requests);
    for op in doc.get_mut("paths").and_then(Value::as_object_mut).into_iter().flat_map(|p| p.values_mut()) {
        for params in
            op.as_object_mut().into_iter().flat_map(|o| o.values_mut()).filter_map(|o| o.get_mut("parameters"))
        {
            params.as_array_mut().into_iter().flatten().for_each(query_rule);
        }
    }
    mark_optional_bodies(doc, &requests);
}

/// The schema of `method path`'s JSON body.
fn body_schema<'a>(doc: &'a mut Value, method: &str, path: &str) -> &'a mut Value {
    let pointer = format!("/paths/{}/{method}/requestBody/content/application~1json", path.replace('/', "~1"));
    let body = doc.pointer_mut(&pointer).unwrap_or_else(|| panic!("doc_rules: no body of {method} {path}"));
    &mut body["schema"]
}

/// The components the rules name ([`hardware_info`], [`clean_json`]) and
/// [`COMPONENT_RULES`].
fn add_component_rules(doc: &mut Value) {
    let schemas = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut).expect("components");
    schemas.insert("HardwareInfo".into(), hardware_info());
    schemas.insert("CleanJson".into(), clean_json());
    for (name, keywords) in COMPONENT_RULES {
        let Some(Value::Object(s)) = schemas.get_mut(*name) else { panic!("doc_rules: no component {name}") };
        for (k, v) in keywords().as_object().expect("keywords are an object") {
            match (k.as_str(), s.get_mut(k)) {
                ("required", Some(Value::Array(r))) => r.extend(v.as_array().expect("a list").iter().cloned()),
                ("properties", Some(Value::Object(props))) => {
                    props.extend(v.as_object().expect("properties").iter().map(|(n, p)| (n.clone(), p.clone())));
                }
                _ => {
                    s.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

/// A create's own component: the shared body's, with the fields it needs required
/// and not nullable.
fn derive_create(doc: &mut Value, (method, path, from, to, required): &Create) {
    let Some(Value::Object(mut s)) = doc.pointer(&format!("/components/schemas/{from}")).cloned() else {
        panic!("doc_rules: no component {from}")
    };
    let props = s.get_mut("properties").and_then(Value::as_object_mut).expect("properties");
    for name in *required {
        let p = props.get_mut(*name).unwrap_or_else(|| panic!("doc_rules: {from}.{name}"));
        if let Some(Value::Array(types)) = p.get_mut("type") {
            types.retain(|t| t != "null");
        }
    }
    s.insert("required".into(), json!(required));
    doc["components"]["schemas"][*to] = Value::Object(s);
    *body_schema(doc, method, path) = json!({ "$ref": format!("#/components/schemas/{to}") });
}

/// [`RULES`] (on a create's component too), then the text rule on every other string
/// field of a request.
fn apply_field_rules(doc: &mut Value, requests: &[String]) {
    let schemas = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut).expect("components");
    for (schema, prop, rule) in RULES {
        let creates = CREATES.iter().filter(|c| c.2 == *schema).map(|c| c.3);
        for name in std::iter::once(*schema).chain(creates) {
            let Some(p) = schemas.get_mut(name).and_then(|s| s.pointer_mut(&format!("/properties/{prop}"))) else {
                panic!("doc_rules: {name}.{prop} is not in the document");
            };
            apply(p, rule.keywords());
        }
    }
    for name in requests {
        if let Some(props) = schemas.get_mut(name).and_then(|s| s.get_mut("properties")).and_then(Value::as_object_mut)
        {
            props.values_mut().for_each(text_by_default);
        }
    }
}

/// A body whose schema needs no field may be left out.
fn mark_optional_bodies(doc: &mut Value, requests: &[String]) {
    let schemas = doc.pointer("/components/schemas").and_then(Value::as_object).expect("components");
    let optional: Vec<String> = requests
        .iter()
        .filter(|n| {
            schemas.get(*n).is_some_and(|s| {
                s.get("anyOf").is_none() && s.get("required").is_none_or(|r| r.as_array().is_some_and(Vec::is_empty))
            })
        })
        .cloned()
        .collect();
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for op in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|item| item.values_mut()) {
        let Some(body) = op.get_mut("requestBody") else { continue };
        let r = body.pointer("/content/application~1json/schema/$ref").and_then(Value::as_str);
        if r.and_then(|r| r.strip_prefix("#/components/schemas/")).is_some_and(|n| optional.iter().any(|o| o == n)) {
            body["required"] = false.into();
        }
    }
}

/// The list query parameters: `limit` exactly; `where` and `orderby` are a grammar
/// (docs/API.md) that no JSON Schema states, so only their length. The one path
/// parameter that is not an id: an address (`/ip/v3/userspace/{id}/history/{address}`,
/// `parse_addr`).
fn query_rule(p: &mut Value) {
    if p.get("in").is_some_and(|i| i == "path") && p.get("name").is_some_and(|n| n == "address") {
        if let Some(schema) = p.get_mut("schema") {
            apply(schema, json!({ "pattern": IP_ADDRESS }));
        }
        return;
    }
    if p.get("in").is_none_or(|i| i != "query") {
        return;
    }
    let keywords = match p.get("name").and_then(Value::as_str) {
        Some("limit") => json!({
            "pattern": format!("^{WS}*(([0-9]{{1,18}}{WS}*,{WS}*)?[0-9]{{1,18}}{WS}*)?$"),
        }),
        Some("where" | "orderby") => json!({ "maxLength": dcim_core::query::MAX_INPUT_LEN }),
        _ => return,
    };
    if let Some(schema) = p.get_mut("schema") {
        apply(schema, keywords);
    }
}

/// The keywords a rule adds, made when the document is.
type Keywords = fn() -> Value;

/// Keywords for a whole request schema: what joins its fields.
const COMPONENT_RULES: &[(&str, Keywords)] = &[
    // routes/ip.rs allocate_ip: the address, or the pool or network to take one from.
    ("IpRequest", || {
        json!({ "anyOf": [
            { "required": ["ip_name"], "properties": { "ip_name": { "type": "string", "minLength": 1 } } },
            { "required": ["ip_pool"], "properties": { "ip_pool": { "type": "integer", "not": { "const": 0 } } } },
            { "required": ["ip_net"], "properties": { "ip_net": { "type": "integer", "not": { "const": 0 } } } },
        ] })
    }),
    // routes/operations.rs agent_report: a report carries its data, an object (a
    // HardwareInfo for `hardware`; the others fit it too).
    (
        "AgentReport",
        || json!({ "required": ["data"], "properties": { "data": { "$ref": "#/components/schemas/HardwareInfo" } } }),
    ),
    // routes/operations.rs fake_hardware.
    (
        "FakeHardwareRequest",
        || json!({ "properties": { "hardware": { "$ref": "#/components/schemas/HardwareInfo" } } }),
    ),
];

/// Request bodies the routes take as raw JSON, and the component they must match.
const BODIES: &[(&str, &str, &str)] = &[("post", "/dci/v3/server/{id}/hardware_info", "HardwareInfo")];

/// A create that shares its body type with the edit but needs some of its fields:
/// `(method, path, the shared component, the create's component, required fields)`.
type Create = (&'static str, &'static str, &'static str, &'static str, &'static [&'static str]);

/// The creates that share their body type with the edit.
const CREATES: &[Create] = &[
    ("post", "/dci/v3/location", "LocationInput", "NewLocation", &["name"]),
    ("post", "/dci/v3/webhook", "WebhookInput", "NewWebhook", &["url", "events"]),
    ("post", "/dci/v3/site", "SiteInput", "NewSite", &["name"]),
];

/// A server's hardware as the agent reports it and `hardware_info` takes it
/// (dcim-core configuration.rs `HardwareInfo`): the known fields typed, any other field
/// a plain value; every string free of control characters (the body's rule, which
/// covers the whole document, since it is stored as sent).
fn hardware_info() -> Value {
    let text = json!({ "type": "string", "pattern": format!("^[^{CONTROL_BUT_BREAKS}]*$") });
    let other = json!({ "$ref": "#/components/schemas/CleanJson" });
    let key = json!({ "pattern": format!("^[^{CONTROL_BUT_BREAKS}]*$") });
    let opt_text = json!({ "anyOf": [text, { "type": "null" }] });
    let count = |max: u64| json!({ "type": ["integer", "null"], "minimum": 0, "maximum": max });
    let object = |props: Value| json!({ "type": ["object", "null"], "properties": props, "additionalProperties": other, "propertyNames": key });
    const U32: u64 = u32::MAX as u64;
    const EXACT: u64 = u64::MAX;
    let disk = object(json!({
        "name": opt_text, "size_gb": count(EXACT), "serial": opt_text, "model": opt_text,
        "type": { "type": ["string", "null"], "enum": ["HDD", "hdd", "Hdd", "SSD", "ssd", "Ssd", "NVMe", "nvme", "NVME", "Nvme", null] },
    }));
    let nic = object(json!({ "name": opt_text, "mac": opt_text, "link": { "type": ["boolean", "null"] } }));
    let mut hw = object(json!({
        "cpu": object(json!({ "model": opt_text, "sockets": count(U32), "cores": count(U32), "threads": count(U32) })),
        "memory": object(json!({ "total_mib": count(EXACT) })),
        "disks": { "type": ["array", "null"], "items": { "allOf": [disk, { "type": "object" }] } },
        "nics": { "type": ["array", "null"], "items": { "allOf": [nic, { "type": "object" }] } },
        "motherboard": object(json!({ "vendor": opt_text, "model": opt_text, "serial": opt_text })),
    }));
    hw["type"] = "object".into();
    hw["description"] =
        "A server's hardware: `cpu`, `memory`, `disks`, `nics`, `motherboard`; other fields are kept as given.".into();
    hw
}

/// Any JSON value whose strings and keys hold no control character but tab and line
/// breaks.
fn clean_json() -> Value {
    let text = format!("^[^{CONTROL_BUT_BREAKS}]*$");
    json!({ "anyOf": [
        { "type": "string", "pattern": text },
        { "type": ["number", "boolean", "null"] },
        { "type": "array", "items": { "$ref": "#/components/schemas/CleanJson" } },
        { "type": "object", "propertyNames": { "pattern": text },
          "additionalProperties": { "$ref": "#/components/schemas/CleanJson" } },
    ] })
}

/// Merges a rule's keywords into a property schema; an enum of a nullable field
/// keeps `null`.
fn apply(p: &mut Value, keywords: Value) {
    let nullable = p.get("type").and_then(Value::as_array).is_some_and(|t| t.iter().any(|t| t == "null"));
    let Some(obj) = p.as_object_mut() else { return };
    if let Value::Object(kw) = keywords {
        for (k, mut v) in kw {
            if k == "enum" && nullable {
                v.as_array_mut().expect("an enum is a list").push(Value::Null);
            }
            obj.insert(k, v);
        }
    }
}

/// A string property with no rule yet gets the text rule of every body.
fn text_by_default(p: &mut Value) {
    let is_string = match p.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    let ruled = ["pattern", "enum", "format", "const"].iter().any(|k| p.get(*k).is_some());
    if is_string && !ruled {
        apply(p, Rule::Text(0).keywords());
    }
    if p.get("type").is_some_and(|t| t == "array" || t.as_array().is_some_and(|ts| ts.iter().any(|t| t == "array")))
        && let Some(items) = p.get_mut("items")
    {
        text_by_default(items);
    }
}

/// The components a request body names, and the components they name in turn.
fn request_schemas(doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut todo: Vec<String> = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for item in paths.values().filter_map(Value::as_object) {
            for op in item.values() {
                if let Some(body) = op.pointer("/requestBody/content/application~1json/schema") {
                    refs(body, &mut todo);
                }
            }
        }
    }
    while let Some(name) = todo.pop() {
        if out.contains(&name) {
            continue;
        }
        if let Some(s) = doc.pointer(&format!("/components/schemas/{name}")) {
            refs(s, &mut todo);
        }
        out.push(name);
    }
    out.sort();
    out
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.push(r.to_owned());
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

// --- The rules written out ([`Rule::Schema`]).

/// A string Python's `$` would take with a final line feed the server does not trim
/// away: joined to a pattern with `not`, as ECMA 262 has no `\Z`.
fn line_feed() -> Value {
    json!({ "type": "string", "pattern": "\\n" })
}

/// `check_password` (routes/users.rs): `min_password_len` (8 unless configured) to 1024
/// characters; tab and line breaks are text like any other.
fn password() -> Value {
    json!({ "minLength": 8, "maxLength": 1024, "pattern": format!("^[^{CONTROL_BUT_BREAKS}]*$") })
}

/// The installed system's root password (`operation_os`): 1 to 256 characters, no
/// control character at all, not trimmed.
fn os_password() -> Value {
    json!({ "minLength": 1, "maxLength": 256, "pattern": format!("^[^{CONTROL}]*$"), "not": line_feed() })
}

/// `edit_self`: a zone name of 1 to 64 letters, digits, `-`, `_` and `/`, not trimmed.
fn timezone() -> Value {
    json!({ "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_/-]*$", "not": line_feed() })
}

/// `qrcode`: one line of at most 255 characters that, percent-encoded into the
/// `otpauth://` URI, still fits a QR code of the highest error correction (1273 bytes,
/// 104 of them the rest of the URI): any 255 ASCII characters (3 bytes each encoded),
/// or 97 of any kind (12 bytes at most).
fn qr_name() -> Value {
    let mut v = Rule::Line(255).keywords();
    v["anyOf"] = json!([{ "maxLength": 97 }, { "pattern": ASCII }]);
    v
}

/// `tags` (routes/inventory.rs): each tag not blank and at most 64 bytes (64 ASCII
/// characters, or 16 of any kind); the server takes line breaks and tabs inside too.
fn tags() -> Value {
    let mut item = Rule::RequiredLine(64).keywords();
    item["type"] = "string".into();
    item["anyOf"] = json!([{ "maxLength": 16 }, { "pattern": ASCII }]);
    json!({ "items": item })
}

/// `installer` (routes/inventory.rs): an answer file that is not blank, at most 65536
/// bytes (65536 ASCII characters, or 16384 of any kind).
fn answer_file() -> Value {
    json!({
        "pattern": format!("^[^{CONTROL_BUT_BREAKS}]*[^\\s{CONTROL}][^{CONTROL_BUT_BREAKS}]*$"),
        "anyOf": [{ "maxLength": 16384 }, { "maxLength": 65536, "pattern": ASCII }],
    })
}

/// `parse_network` (dcim-core ip.rs): a CIDR network, /8 or longer, with its host bits
/// clear. IPv4 exactly (each prefix length with the values its last network octet may
/// take); IPv6 as `G:...:G::/P` with P covering the groups written (16 per group) or
/// more, `::/P`, or all eight groups with /128; the server takes any IPv6 network.
fn network() -> Value {
    // From the last octet in: octet `b` (1 to 3) ends the prefix (8b to 8b + 7, the
    // octet a multiple of 2^(8 - r)) or is whole and the next one is looked at.
    let mut next = format!("{}/32", octet!());
    for b in (1..=3u32).rev() {
        let zeros = "\\.0".repeat((3 - b) as usize);
        let mut alts: Vec<String> = (0..8u32)
            .map(|r| {
                let starts: Vec<String> = (0..256u32).step_by(256 >> r).map(|n| n.to_string()).collect();
                format!("({}){zeros}/{}", starts.join("|"), 8 * b + r)
            })
            .collect();
        alts.push(next);
        next = format!("{}\\.({})", octet!(), alts.join("|"));
    }
    let lengths = |from: u32| (from..=128).map(|n| n.to_string()).collect::<Vec<_>>().join("|");
    let mut v6: Vec<String> = (1..=7u32).map(|k| format!("({}:){{{k}}}:/({})", h16!(), lengths(16 * k))).collect();
    v6.push(format!("({0}:){{7}}{0}/128", h16!()));
    v6.push(format!("::/({})", lengths(8)));
    json!({ "pattern": format!("^({next}|{})$", v6.join("|")) })
}

/// `create_pool`: a pool has at least one range.
fn at_least_one() -> Value {
    json!({ "minItems": 1 })
}

/// `allocate_pool_ip`: single addresses only, /32 or /128 (which one goes with
/// `family`).
fn host_prefix() -> Value {
    json!({ "enum": [32, 128] })
}

/// `allocate_pool_ip`: no subnets by address.
fn not_true() -> Value {
    json!({ "enum": [false] })
}

/// `operation_os`: each key an OpenSSH public key (trimmed).
fn ssh_keys() -> Value {
    json!({ "items": { "type": "string", "pattern": SSH_KEY } })
}

/// `kinds` (routes/webhooks.rs): at least one of the event kinds (repeats are dropped).
fn webhook_events() -> Value {
    json!({ "minItems": 1, "items": { "type": "string", "enum": dcim_store::webhooks::EVENT_KINDS } })
}

/// `fake_fault`: one of the fake devices' operations, or `*`.
fn fault_ops() -> Value {
    let mut ops: Vec<&str> = dcim_drivers::fake::OPS.to_vec();
    ops.push("*");
    json!({ "enum": ops })
}

/// `snmp_secret` (routes/inventory.rs; its list is inline there): compared in lower
/// case, so every spelling in any case.
fn snmp_auth_protocols() -> Value {
    any_case(&["md5", "sha", "sha224", "sha256", "sha384", "sha512"])
}

/// As [`snmp_auth_protocols`], for the privacy protocol.
fn snmp_priv_protocols() -> Value {
    any_case(&["des", "aes", "aes128", "aes192", "aes256"])
}

/// An enum of `words` in every mix of ASCII upper and lower case.
fn any_case(words: &[&str]) -> Value {
    let mut out: Vec<String> = vec![];
    for w in words {
        let mut forms = vec![String::new()];
        for c in w.chars() {
            let mut next = Vec::with_capacity(forms.len() * 2);
            for f in &forms {
                next.push(format!("{f}{}", c.to_ascii_lowercase()));
                if c.is_ascii_alphabetic() {
                    next.push(format!("{f}{}", c.to_ascii_uppercase()));
                }
            }
            forms = next;
        }
        out.extend(forms);
    }
    json!({ "enum": out })
}
