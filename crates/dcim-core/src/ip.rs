//! IP address arithmetic for IPAM: networks, their reserved addresses, counts,
//! and the sortable keys the database stores addresses under.
//!
//! A key is the address's number in fixed-width hex (8 digits for IPv4, 32 for
//! IPv6), so that text order is numeric order within a family and ranges are
//! simple `BETWEEN`s in any SQL dialect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::ValidationError;

/// DCImanager's family numbers: 2 for IPv4, 10 for IPv6.
pub fn family(addr: &IpAddr) -> i64 {
    if addr.is_ipv4() { 2 } else { 10 }
}

/// `ipv4` or `ipv6`, as the seed spells a family.
pub fn family_name(family: i64) -> &'static str {
    if family == 2 { "ipv4" } else { "ipv6" }
}

pub fn to_u128(addr: &IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

pub fn from_u128(family: i64, n: u128) -> IpAddr {
    if family == 2 { IpAddr::V4(Ipv4Addr::from(n as u32)) } else { IpAddr::V6(Ipv6Addr::from(n)) }
}

/// The sortable key of an address.
pub fn key(addr: &IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => format!("{:08x}", u32::from(*a)),
        IpAddr::V6(a) => format!("{:032x}", u128::from(*a)),
    }
}

pub fn from_key(family: i64, key: &str) -> Option<IpAddr> {
    u128::from_str_radix(key, 16).ok().map(|n| from_u128(family, n))
}

/// Parses an address, naming `field` when it is not one.
pub fn parse_addr(field: &str, raw: &str) -> Result<IpAddr, ValidationError> {
    raw.trim().parse().map_err(|_| ValidationError::new(field, format!("'{raw}' is not an IP address")))
}

/// A network as entered: a real CIDR with the host bits clear, /8 or longer.
pub fn parse_network(field: &str, raw: &str) -> Result<IpNet, ValidationError> {
    let net: IpNet = raw
        .trim()
        .parse()
        .map_err(|_| ValidationError::new(field, format!("'{raw}' is not a network in CIDR notation")))?;
    if net.network() != net.addr() {
        return Err(ValidationError::new(field, format!("'{raw}' has host bits set; the network is {}", net.trunc())));
    }
    if net.prefix_len() < 8 {
        return Err(ValidationError::new(field, "networks must be /8 or longer"));
    }
    Ok(net)
}

/// Number of addresses in a network.
pub fn size(net: &IpNet) -> u128 {
    1u128 << (net.max_prefix_len() - net.prefix_len())
}

/// Addresses never handed out: the network address, the broadcast address of an
/// IPv4 network (both only where the network has room for hosts), the gateway.
pub fn is_reserved(net: &IpNet, gateway: Option<&IpAddr>, addr: &IpAddr) -> bool {
    let n = to_u128(addr);
    let first = to_u128(&net.network());
    let last = to_u128(&net.broadcast());
    let tiny = match net {
        IpNet::V4(_) => net.prefix_len() >= 31,
        IpNet::V6(_) => net.prefix_len() >= 127,
    };
    if !tiny && (n == first || (net.addr().is_ipv4() && n == last)) {
        return true;
    }
    gateway == Some(addr)
}

/// How many of `[start, end]` may be handed out.
pub fn usable_in(net: &IpNet, gateway: Option<&IpAddr>, start: u128, end: u128) -> u128 {
    if end < start {
        return 0;
    }
    let mut n = end - start + 1;
    let fam = if net.addr().is_ipv4() { 2 } else { 10 };
    let first = to_u128(&net.network());
    let last = to_u128(&net.broadcast());
    let mut seen = vec![];
    for cand in [Some(first), Some(last), gateway.map(to_u128)].into_iter().flatten() {
        if cand >= start && cand <= end && !seen.contains(&cand) && is_reserved(net, gateway, &from_u128(fam, cand)) {
            seen.push(cand);
            n -= 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_like_numbers() {
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        let b: IpAddr = "10.0.0.10".parse().unwrap();
        assert!(key(&a) < key(&b));
        assert_eq!(from_key(2, &key(&b)), Some(b));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(key(&v6).len(), 32);
        assert_eq!(from_key(10, &key(&v6)), Some(v6));
    }

    #[test]
    fn networks_and_reserved_addresses() {
        assert!(parse_network("name", "192.0.2.1/24").is_err());
        assert!(parse_network("name", "10.0.0.0/7").is_err());
        assert!(parse_network("name", "nonsense").is_err());
        let net = parse_network("name", "192.0.2.0/24").unwrap();
        let gw: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(size(&net), 256);
        assert!(is_reserved(&net, Some(&gw), &"192.0.2.0".parse().unwrap()));
        assert!(is_reserved(&net, Some(&gw), &"192.0.2.255".parse().unwrap()));
        assert!(is_reserved(&net, Some(&gw), &gw));
        assert!(!is_reserved(&net, Some(&gw), &"192.0.2.2".parse().unwrap()));
        assert_eq!(usable_in(&net, Some(&gw), to_u128(&net.network()), to_u128(&net.broadcast())), 253);
        let v6 = parse_network("name", "2001:db8::/64").unwrap();
        assert_eq!(size(&v6).to_string(), "18446744073709551616");
        let all = usable_in(&v6, None, to_u128(&v6.network()), to_u128(&v6.broadcast()));
        assert_eq!(all.to_string(), "18446744073709551615", "the subnet-router anycast address is kept");
    }
}
