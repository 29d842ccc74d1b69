//! The IPv6 router advertisement iPXE waits for.
//!
//! iPXE configures IPv4 and IPv6 side by side and waits for both; on a segment with
//! no IPv6 router it sits ~16 s on "Configuring" before it fetches the script. One
//! advertisement with router lifetime 0 ("I am not a default router"), no prefix and
//! no flags ends that wait without giving anyone a route or an address. Only send it
//! on segments dcim owns: it answers every router solicitation on the interface.
//!
//! Sent over a raw ICMPv6 socket (needs CAP_NET_RAW) with hop limit 255, as RFC 4861
//! requires of neighbour discovery; the kernel fills in the checksum.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::boots::{EventKind, EventLog};

const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// Solicitations closer together than this share one advertisement.
const MIN_GAP: Duration = Duration::from_millis(200);

/// An ICMPv6 router advertisement: router lifetime 0, no flags, no prefixes, and
/// the sender's link-layer address when known (saves the client a neighbour solicitation).
pub fn router_advertisement(mac: Option<[u8; 6]>) -> Vec<u8> {
    let mut p = vec![
        ROUTER_ADVERTISEMENT,
        0, // code
        0,
        0,  // checksum: the kernel computes it for ICMPv6 raw sockets
        64, // current hop limit suggested to hosts
        0,  // flags: no managed, no other configuration (no DHCPv6 for iPXE to wait on)
        0,
        0, // router lifetime 0: not a default router
        0,
        0,
        0,
        0, // reachable time: unspecified
        0,
        0,
        0,
        0, // retransmission timer: unspecified
    ];
    if let Some(mac) = mac {
        p.extend_from_slice(&[1, 1]); // source link-layer address, 8 bytes
        p.extend_from_slice(&mac);
    }
    p
}

pub(crate) struct Advertiser {
    sock: UdpSocket,
    ifindex: u32,
    packet: Vec<u8>,
}

impl Advertiser {
    /// A raw ICMPv6 socket on `interface`, member of all-routers so solicitations reach it.
    pub(crate) fn open(interface: &str) -> std::io::Result<Self> {
        let sys = std::path::Path::new("/sys/class/net").join(interface);
        let ifindex: u32 = std::fs::read_to_string(sys.join("ifindex"))?
            .trim()
            .parse()
            .map_err(|_| std::io::Error::other(format!("bad ifindex for {interface}")))?;
        let mac = std::fs::read_to_string(sys.join("address")).ok().and_then(|s| parse_mac(s.trim()));
        let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        s.bind_device(Some(interface.as_bytes()))?;
        s.set_multicast_hops_v6(255)?;
        s.set_unicast_hops_v6(255)?;
        s.set_multicast_if_v6(ifindex)?;
        s.set_multicast_loop_v6(false)?;
        s.join_multicast_v6(&ALL_ROUTERS, ifindex)?;
        s.set_nonblocking(true)?;
        // tokio has no raw socket type; a UDP socket's recv_from/send_to are plain
        // recvfrom/sendto, which is all a raw socket needs.
        let sock = UdpSocket::from_std(std::net::UdpSocket::from(s))?;
        Ok(Advertiser { sock, ifindex, packet: router_advertisement(mac) })
    }

    pub(crate) async fn serve(self, interval: Duration, events: EventLog) {
        let mut buf = vec![0u8; 1500];
        let mut tick = tokio::time::interval(interval);
        let mut last: Option<Instant> = None;
        loop {
            let solicited = tokio::select! {
                _ = tick.tick() => false,
                r = self.sock.recv_from(&mut buf) => match r {
                    Ok((n, _)) if n >= 8 && buf[0] == ROUTER_SOLICITATION && buf[1] == 0 => true,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "ICMPv6 receive failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            if solicited && last.is_some_and(|t| t.elapsed() < MIN_GAP) {
                continue;
            }
            let to = SocketAddr::V6(SocketAddrV6::new(ALL_NODES, 0, 0, self.ifindex));
            match self.sock.send_to(&self.packet, to).await {
                Ok(_) => {
                    last = Some(Instant::now());
                    events.push(EventKind::RouterAdvertisement { solicited });
                }
                // e.g. the interface's link-local address is still tentative (DAD)
                Err(e) => tracing::debug!(error = %e, "router advertisement not sent"),
            }
        }
    }
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertisement_says_not_a_router() {
        let p = router_advertisement(Some([0x52, 0x54, 0, 0, 0, 1]));
        assert_eq!(p.len(), 16 + 8);
        assert_eq!(p[0], 134);
        assert_eq!(&p[6..8], &[0, 0], "router lifetime must be 0");
        assert_eq!(p[5], 0, "no M/O flags");
        assert_eq!(&p[16..], &[1, 1, 0x52, 0x54, 0, 0, 0, 1]);
        assert_eq!(router_advertisement(None).len(), 16);
        assert_eq!(parse_mac("52:54:00:00:00:01"), Some([0x52, 0x54, 0, 0, 0, 1]));
        assert_eq!(parse_mac("52:54:00"), None);
    }
}
