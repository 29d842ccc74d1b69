//! Where a webhook may post: not to link-local addresses (cloud metadata services live
//! there), unspecified, multicast or broadcast ones, and not to dcim itself (one of its
//! own listeners), unless the configuration allows unsafe targets. Checked when an
//! endpoint is registered and again before every delivery, on every address its host
//! resolves to.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::http::Uri;

/// The addresses dcim answers on, and whether unsafe targets are allowed anyway.
#[derive(Debug, Clone, Default)]
pub struct UrlGuard {
    pub own: Vec<SocketAddr>,
    pub allow_unsafe: bool,
}

/// AWS' IPv6 metadata address.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// Addresses no webhook may reach: link-local (169.254.0.0/16, fe80::/10, where
/// metadata services answer), unspecified, multicast, broadcast, the IPv6 metadata one.
pub fn forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_ip(IpAddr::V4(v4)),
            None => {
                (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.is_unspecified() || v6.is_multicast() || v6 == METADATA_V6
            }
        },
    }
}

/// The scheme, host and port of a webhook URL, or why it is not one.
pub fn parse(url: &str) -> Result<(String, String, u16), String> {
    let uri = Uri::from_str(url.trim()).map_err(|_| "not a URL".to_owned())?;
    let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
    let port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err("the URL must start with http:// or https://".into()),
    };
    let authority = uri.authority().ok_or("the URL has no host")?;
    if authority.as_str().contains('@') {
        return Err("the URL may not hold a user name or password".into());
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    Ok((scheme, host, authority.port_u16().unwrap_or(port)))
}

impl UrlGuard {
    /// Whether `addr` is one of dcim's own listeners (a loopback address reaches a
    /// listener on any address of the machine).
    pub fn reaches_self(&self, addr: SocketAddr) -> bool {
        self.own.iter().any(|o| {
            o.port() == addr.port()
                && (o.ip() == addr.ip() || o.ip().is_unspecified() || (addr.ip().is_loopback() && o.ip().is_loopback()))
        })
    }

    /// Checks a URL: its form, then every address its host resolves to.
    pub async fn check(&self, url: &str) -> Result<(), String> {
        let (_, host, port) = parse(url)?;
        if self.allow_unsafe {
            return Ok(());
        }
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| format!("{host} does not resolve: {e}"))?
                .collect(),
        };
        for a in addrs {
            if forbidden_ip(a.ip()) {
                return Err(format!("{host} is {}, a link-local, multicast or unspecified address", a.ip()));
            }
            if self.reaches_self(a) {
                return Err(format!("{host}:{port} is dcim itself"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_targets_are_known() {
        for ip in [
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "fe80::1",
            "::",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            assert!(forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.1", "10.0.0.1", "192.0.2.1", "::1", "2001:db8::1"] {
            assert!(!forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
        let g = UrlGuard { own: vec!["0.0.0.0:8443".parse().unwrap()], allow_unsafe: false };
        assert!(g.reaches_self("127.0.0.1:8443".parse().unwrap()));
        assert!(!g.reaches_self("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(parse("https://hooks.example.com/x").unwrap(), ("https".into(), "hooks.example.com".into(), 443));
        assert_eq!(parse("http://[::1]:81/").unwrap().1, "::1");
        assert!(parse("ftp://x/").is_err() && parse("http://u:p@x/").is_err() && parse("nonsense").is_err());
    }
}
