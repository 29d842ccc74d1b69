//! Newtypes that validate at the boundary: once a value is an [`Email`] or a [`Mac`],
//! the rest of the code never checks it again.

use std::fmt;

/// A value that failed validation; `field` names the input field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// An e-mail address used as a login: trimmed, lower-cased, one `@`, a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim().to_ascii_lowercase();
        let bad = |m: &str| ValidationError::new(field, m);
        if s.is_empty() {
            return Err(bad("must not be empty"));
        }
        if s.len() > 254 {
            return Err(bad("is longer than 254 characters"));
        }
        let (local, domain) = s.split_once('@').ok_or_else(|| bad("must contain '@'"))?;
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(bad("is not an e-mail address"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain spaces"));
        }
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return Err(bad("needs a domain such as example.com"));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first control character of `s` that text may not hold, if any: NUL, the rest of
/// the C0 range, DEL and the C1 range. `multiline` text (notes, answer-file templates, an agent's
/// messages) may hold tab, line feed and carriage return; a single line holds none.
pub fn forbidden_control(s: &str, multiline: bool) -> Option<char> {
    s.chars().find(|&c| c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r')))
}

fn control_error(field: &str, c: char) -> ValidationError {
    ValidationError::new(field, format!("must not contain control characters (found U+{:04X})", u32::from(c)))
}

/// Text of any kind, refused if it holds a control character other than tab and
/// line breaks (see [`forbidden_control`]).
pub fn text(field: &str, raw: &str) -> Result<(), ValidationError> {
    forbidden_control(raw, true).map_or(Ok(()), |c| Err(control_error(field, c)))
}

/// A note: text that may span lines (tab and line breaks allowed, no other control
/// character), at most `max` characters, kept as given.
pub fn note(field: &str, raw: &str, max: usize) -> Result<String, ValidationError> {
    text(field, raw)?;
    if raw.chars().count() > max {
        return Err(ValidationError::new(field, format!("is longer than {max} characters")));
    }
    Ok(raw.to_owned())
}

/// A single line of text such as a description or a phone number: at most `max`
/// characters as sent, no control characters at all, kept trimmed.
pub fn line(field: &str, raw: &str, max: usize) -> Result<String, ValidationError> {
    let s = raw.trim();
    if let Some(c) = forbidden_control(s, false) {
        return Err(control_error(field, c));
    }
    if raw.chars().count() > max {
        return Err(ValidationError::new(field, format!("is longer than {max} characters")));
    }
    Ok(s.to_owned())
}

/// [`line`] that may not be empty: 1 to `max` characters after trimming.
pub fn required_line(field: &str, raw: &str, max: usize) -> Result<String, ValidationError> {
    let s = line(field, raw, max)?;
    if s.is_empty() {
        return Err(ValidationError::new(field, format!("must be 1 to {max} characters")));
    }
    Ok(s)
}

/// The name of a thing (a server, a location, a rack, a device, a template): one
/// line of 1 to 128 characters, trimmed, no control characters.
pub fn name(field: &str, raw: &str) -> Result<String, ValidationError> {
    let s = line(field, raw, 128).map_err(|e| {
        if e.message.starts_with("is longer") { ValidationError::new(field, "must be 1 to 128 characters") } else { e }
    })?;
    if s.is_empty() {
        return Err(ValidationError::new(field, "must be 1 to 128 characters"));
    }
    Ok(s)
}

/// A 48-bit MAC address, stored and shown as lower-case `aa:bb:cc:dd:ee:ff`.
/// Accepts `:` or `-` separators, or twelve bare hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac([u8; 6]);

impl Mac {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let hex: String = raw.trim().chars().filter(|c| *c != ':' && *c != '-').collect();
        let bad = || ValidationError::new(field, format!("'{raw}' is not a MAC address"));
        if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3], o[4], o[5])
    }
}

/// A device address `host` or `host:port` (IPv6 as `[::1]:623`). Returns it trimmed.
pub fn device_address(field: &str, raw: &str) -> Result<String, ValidationError> {
    let s = raw.trim();
    let bad = |m: &str| ValidationError::new(field, format!("'{raw}' {m}"));
    if s.is_empty() {
        return Err(bad("is empty"));
    }
    if s.parse::<std::net::IpAddr>().is_ok() || s.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(s.to_owned());
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if let Some(p) = port {
        p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("has a bad port"))?;
    }
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !host_ok {
        return Err(bad("is not a host name or IP address"));
    }
    Ok(s.to_owned())
}

/// A Redfish BMC address: a device address (HTTPS is implied), or a URL
/// `http[s]://host[:port]`, optionally ending with the system's path
/// `/redfish/v1/Systems/ID` for a BMC that manages several systems.
pub fn redfish_address(field: &str, raw: &str) -> Result<String, ValidationError> {
    let s = raw.trim().trim_end_matches('/');
    let Some((scheme, rest)) = s.split_once("://") else {
        return device_address(field, raw);
    };
    if scheme != "http" && scheme != "https" {
        return Err(ValidationError::new(field, format!("'{raw}' must use http or https")));
    }
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    device_address(field, host)?;
    let id = path.strip_prefix("/redfish/v1/Systems/");
    if !path.is_empty() && !id.is_some_and(|id| !id.is_empty() && !id.contains(['/', '?', '#', ' '])) {
        return Err(ValidationError::new(
            field,
            format!("'{raw}' may end only with a system's path, /redfish/v1/Systems/ID"),
        ));
    }
    Ok(s.to_owned())
}

/// A DNS host name or FQDN, as used in a server's `domain`. Empty is allowed (no name).
pub fn domain_name(field: &str, raw: &str) -> Result<String, ValidationError> {
    let s = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if s.is_empty() {
        return Ok(s);
    }
    let ok = s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok { Ok(s) } else { Err(ValidationError::new(field, format!("'{raw}' is not a host name"))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(Email::parse("email", " Admin@Example.com ").unwrap().as_str(), "admin@example.com");
        for bad in ["", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@b@c.d", "a@.b"] {
            assert!(Email::parse("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs() {
        let m = Mac::parse("mac", "52-54-00-AB-cd-01").unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:01");
        assert_eq!(Mac::parse("mac", "525400abcd01").unwrap(), m);
        for bad in ["", "52:54:00:ab:cd", "zz:54:00:ab:cd:01", "52:54:00:ab:cd:01:02"] {
            assert!(Mac::parse("mac", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn control_characters() {
        assert_eq!(name("name", "  srv-1 ").unwrap(), "srv-1");
        for bad in ["srv\u{0}x", "\u{0}", "a\tb", "a\nb", "a\u{1b}[31m", "a\u{7f}", "a\u{85}b", "", "   "] {
            assert!(name("name", bad).is_err(), "{bad:?}");
        }
        assert!(name("name", &"x".repeat(129)).is_err());
        assert_eq!(name("name", "Сервер №1").unwrap(), "Сервер №1");
        assert!(text("note", "line 1\r\nline 2\tend").is_ok());
        let e = text("note", "a\u{0}").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("note", "must not contain control characters (found U+0000)")
        );
        assert!(line("phone", "+1 555\n0100", 64).is_err());
        assert_eq!(line("phone", " +1 555 0100 ", 64).unwrap(), "+1 555 0100");
    }

    #[test]
    fn addresses_and_domains() {
        for ok in ["127.0.0.1", "127.0.0.1:6230", "[::1]:623", "::1", "bmc-1.dc.example.com", "bmc:623"] {
            assert_eq!(device_address("ip", ok).unwrap(), ok);
        }
        for bad in ["", "a b", "host:0", "host:99999", "-x.com", "a..b"] {
            assert!(device_address("ip", bad).is_err(), "{bad}");
        }
        for ok in ["bmc.example.com", "http://127.0.0.1:8000", "https://[::1]:8443/redfish/v1/Systems/abc-1"] {
            assert_eq!(redfish_address("ipmi.address", ok).unwrap(), ok);
        }
        for bad in ["ftp://bmc", "http://", "http://bmc/x", "https://bmc/redfish/v1/Systems/", "http://a b"] {
            assert!(redfish_address("ipmi.address", bad).is_err(), "{bad}");
        }
        assert_eq!(domain_name("domain", "Srv1.Example.com.").unwrap(), "srv1.example.com");
        assert!(domain_name("domain", "bad_name!").is_err());
    }
}
