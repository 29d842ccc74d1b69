//! The DHCPv4 server: decides, for one decoded request, whether and what to answer.
//!
//! [`DhcpServer::handle`] is pure (no sockets, time passed in) so the rules are tested
//! on encoded packets; [`serve`] only moves bytes. The rules: answer only MACs with a
//! prepared boot; a PXE ROM (no option 175) gets the iPXE loader for its architecture
//! over TFTP, iPXE gets the URL of its per-MAC script plus option 175.176 = 1
//! (`no-pxedhcp`, else iPXE waits 2 s for proxyDHCP offers). Full mode leases
//! addresses from the configured range and sends neither router nor DNS server;
//! proxy mode leaves addresses to the segment's own server and sends boot options
//! only. The leases live in memory: a provisioning lease matters only while its
//! machine boots.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dcim_core::Mac;
use dhcproto::v4::{Architecture, DhcpOption, Message, MessageType, Opcode, OptionCode, UnknownOption};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::boots::{BootTable, EventKind, EventLog, mac_from_bytes, mac_hyphens};
use crate::{DhcpMode, NetbootConfig};

/// iPXE's encapsulated options (175) and its `no-pxedhcp` setting (176).
const OPT_IPXE: u8 = 175;
const IPXE_NO_PXEDHCP: u8 = 176;
/// How long an offered address stays reserved for the client that was offered it.
const OFFER_HOLD: Duration = Duration::from_secs(60);
/// BOOTP's minimum message size; some PXE ROMs drop shorter replies.
const MIN_LEN: usize = 300;

/// Which socket a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// 67: DHCP proper.
    Dhcp,
    /// 4011: the PXE boot server port a client asks after a proxyDHCP offer.
    Pxe,
}

impl Port {
    pub fn number(self) -> u16 {
        match self {
            Port::Dhcp => 67,
            Port::Pxe => 4011,
        }
    }
}

/// What a client is told to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootChoice {
    /// A PXE ROM: this iPXE loader, over TFTP from the server.
    Loader(String),
    /// iPXE: this script URL.
    Script(String),
}

impl BootChoice {
    fn file(&self) -> &str {
        match self {
            BootChoice::Loader(f) | BootChoice::Script(f) => f,
        }
    }
}

/// An answer and where to send it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub msg: Message,
    pub to: SocketAddrV4,
}

#[derive(Debug, Clone)]
struct Lease {
    ip: Ipv4Addr,
    expires: Instant,
}

/// DHCP state of one segment: the configuration and the leases.
#[derive(Debug)]
pub struct DhcpServer {
    cfg: Arc<NetbootConfig>,
    leases: HashMap<Mac, Lease>,
}

impl DhcpServer {
    pub fn new(cfg: Arc<NetbootConfig>) -> Self {
        DhcpServer { cfg, leases: HashMap::new() }
    }

    /// The address leased (or offered) to `mac`, if any.
    pub fn lease_of(&self, mac: &Mac) -> Option<Ipv4Addr> {
        self.leases.get(mac).map(|l| l.ip)
    }

    /// The answer to `req` received on `port` from `src`, or `None` to stay silent.
    pub fn handle(
        &mut self,
        req: &Message,
        port: Port,
        src: SocketAddr,
        boots: &BootTable,
        events: &EventLog,
        now: Instant,
    ) -> Option<Reply> {
        if req.opcode() != Opcode::BootRequest || req.hlen() != 6 {
            return None;
        }
        let mac = mac_from_bytes(req.chaddr())?;
        let kind = req.opts().msg_type()?;
        let ignore = |reason: &str| {
            tracing::debug!(%mac, ?kind, reason, "DHCP request ignored");
            events.push(EventKind::DhcpIgnored { mac, reason: reason.to_owned() });
            None
        };
        if !matches!(kind, MessageType::Discover | MessageType::Request | MessageType::Release | MessageType::Decline) {
            return None;
        }
        if !boots.contains(&mac) {
            return ignore("no boot prepared for this MAC");
        }
        let choice = match self.boot_choice(req, &mac) {
            Ok(c) => c,
            Err(reason) => return ignore(&reason),
        };
        match (&self.cfg.dhcp, kind, port) {
            (DhcpMode::Full { .. }, MessageType::Discover, Port::Dhcp) => {
                let requested = requested_ip(req);
                let Some(ip) = self.allocate(mac, requested, now) else {
                    return ignore("the address range is exhausted");
                };
                self.leases.insert(mac, Lease { ip, expires: now + OFFER_HOLD });
                events.push(EventKind::DhcpOffer { mac, ip: Some(ip), boot_file: choice.file().to_owned() });
                Some(self.reply(req, MessageType::Offer, Some(ip), &choice, port, src))
            }
            (DhcpMode::Full { lease_secs, .. }, MessageType::Request, Port::Dhcp) => {
                let server_id = server_id(req);
                if server_id.is_some_and(|s| s != self.cfg.server_ip) {
                    self.leases.remove(&mac);
                    return ignore("the client chose another server");
                }
                let wanted = requested_ip(req).or(Some(req.ciaddr()).filter(|a| !a.is_unspecified()));
                let ours = self.leases.get(&mac).map(|l| l.ip);
                if wanted.is_some() && wanted == ours {
                    let ip = ours?;
                    self.leases.insert(mac, Lease { ip, expires: now + Duration::from_secs(u64::from(*lease_secs)) });
                    events.push(EventKind::DhcpAck { mac, ip: Some(ip), boot_file: choice.file().to_owned() });
                    return Some(self.reply(req, MessageType::Ack, Some(ip), &choice, port, src));
                }
                if server_id.is_some() || ours.is_some() {
                    events.push(EventKind::DhcpNak { mac });
                    return Some(self.nak(req));
                }
                ignore("requests an address this server never offered")
            }
            (DhcpMode::Full { .. }, MessageType::Release | MessageType::Decline, Port::Dhcp) => {
                self.leases.remove(&mac);
                None
            }
            (DhcpMode::Proxy, MessageType::Discover, Port::Dhcp)
            | (DhcpMode::Proxy, MessageType::Request, Port::Pxe) => {
                if !is_pxe_client(req) {
                    return ignore("proxyDHCP answers PXE clients only");
                }
                let (reply_kind, offer) =
                    if kind == MessageType::Discover { (MessageType::Offer, true) } else { (MessageType::Ack, false) };
                let boot_file = choice.file().to_owned();
                events.push(if offer {
                    EventKind::DhcpOffer { mac, ip: None, boot_file }
                } else {
                    EventKind::DhcpAck { mac, ip: None, boot_file }
                });
                Some(self.reply(req, reply_kind, None, &choice, port, src))
            }
            _ => None,
        }
    }

    /// The loader or script for this client: iPXE announces itself with option 175
    /// (or user class "iPXE"); anything else is a PXE ROM that needs iPXE first.
    pub fn boot_choice(&self, req: &Message, mac: &Mac) -> Result<BootChoice, String> {
        let ipxe = req.opts().get(OptionCode::Unknown(OPT_IPXE)).is_some()
            || matches!(req.opts().get(OptionCode::UserClass), Some(DhcpOption::UserClass(c)) if c.as_slice() == b"iPXE");
        if ipxe {
            return Ok(BootChoice::Script(format!("{}/boot/{}.ipxe", self.cfg.http_base, mac_hyphens(mac))));
        }
        match req.opts().get(OptionCode::ClientSystemArchitecture) {
            None => Ok(BootChoice::Loader(self.cfg.bios_loader.clone())),
            Some(DhcpOption::ClientSystemArchitecture(a)) => match *a {
                Architecture::X86_Bios => Ok(BootChoice::Loader(self.cfg.bios_loader.clone())),
                Architecture::X64 | Architecture::BC => Ok(BootChoice::Loader(self.cfg.efi_loader.clone())),
                Architecture(n) => Err(format!("no loader for client architecture {n}")),
            },
            Some(_) => Err("malformed client architecture".into()),
        }
    }

    /// The client's current address, the one it asks for, or the first free one.
    fn allocate(&mut self, mac: Mac, requested: Option<Ipv4Addr>, now: Instant) -> Option<Ipv4Addr> {
        let DhcpMode::Full { first, last, .. } = self.cfg.dhcp else { return None };
        let (first, last) = (u32::from(first), u32::from(last));
        let free = |ip: Ipv4Addr, leases: &HashMap<Mac, Lease>| {
            let n = u32::from(ip);
            n >= first
                && n <= last
                && ip != self.cfg.server_ip
                && !leases.iter().any(|(m, l)| *m != mac && l.ip == ip && l.expires > now)
        };
        if let Some(l) = self.leases.get(&mac)
            && free(l.ip, &self.leases)
        {
            return Some(l.ip);
        }
        if let Some(ip) = requested
            && free(ip, &self.leases)
        {
            return Some(ip);
        }
        // Forget expired leases of other machines before scanning.
        self.leases.retain(|m, l| *m == mac || l.expires > now);
        (first..=last).map(Ipv4Addr::from).find(|ip| free(*ip, &self.leases))
    }

    fn reply(
        &self,
        req: &Message,
        kind: MessageType,
        yiaddr: Option<Ipv4Addr>,
        choice: &BootChoice,
        port: Port,
        src: SocketAddr,
    ) -> Reply {
        let mut m = base_reply(req);
        m.set_yiaddr(yiaddr.unwrap_or(Ipv4Addr::UNSPECIFIED));
        m.set_siaddr(self.cfg.server_ip);
        let file = choice.file();
        if file.len() < 128 {
            m.set_fname_str(file);
        }
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ServerIdentifier(self.cfg.server_ip));
        if let (DhcpMode::Full { prefix_len, lease_secs, dns_servers, .. }, Some(_)) = (&self.cfg.dhcp, yiaddr) {
            o.insert(DhcpOption::AddressLeaseTime(*lease_secs));
            o.insert(DhcpOption::SubnetMask(Ipv4Addr::from(u32::MAX << (32 - u32::from(*prefix_len)))));
            if !dns_servers.is_empty() {
                o.insert(DhcpOption::DomainNameServer(dns_servers.clone()));
            }
        }
        if self.cfg.dhcp == DhcpMode::Proxy {
            o.insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
            // PXE discovery control: no boot server discovery, the file in this packet is it.
            o.insert(DhcpOption::VendorExtensions(vec![6, 1, 8, 255]));
            if let Some(uuid) = req.opts().get(OptionCode::ClientMachineIdentifier) {
                o.insert(uuid.clone());
            }
        }
        o.insert(DhcpOption::BootfileName(file.as_bytes().to_vec()));
        if let BootChoice::Script(_) = choice {
            o.insert(DhcpOption::Unknown(UnknownOption::new(
                OptionCode::Unknown(OPT_IPXE),
                vec![IPXE_NO_PXEDHCP, 1, 1],
            )));
        }
        Reply { msg: m, to: destination(req, port, src) }
    }

    fn nak(&self, req: &Message) -> Reply {
        let mut m = base_reply(req);
        m.opts_mut().insert(DhcpOption::MessageType(MessageType::Nak));
        m.opts_mut().insert(DhcpOption::ServerIdentifier(self.cfg.server_ip));
        let to = if req.giaddr().is_unspecified() {
            SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)
        } else {
            SocketAddrV4::new(req.giaddr(), 67)
        };
        Reply { msg: m, to }
    }
}

fn base_reply(req: &Message) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootReply)
        .set_htype(req.htype())
        .set_xid(req.xid())
        .set_flags(req.flags())
        .set_giaddr(req.giaddr())
        .set_chaddr(req.chaddr());
    m
}

/// RFC 2131 4.1: through the relay if there is one, to a configured client directly,
/// else broadcast (a booting client has no address to unicast to). Port 4011 answers
/// go back where the request came from.
fn destination(req: &Message, port: Port, src: SocketAddr) -> SocketAddrV4 {
    if port == Port::Pxe
        && let SocketAddr::V4(a) = src
    {
        return a;
    }
    if !req.giaddr().is_unspecified() {
        return SocketAddrV4::new(req.giaddr(), 67);
    }
    if !req.ciaddr().is_unspecified() {
        return SocketAddrV4::new(req.ciaddr(), 68);
    }
    SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)
}

fn requested_ip(req: &Message) -> Option<Ipv4Addr> {
    match req.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    }
}

fn server_id(req: &Message) -> Option<Ipv4Addr> {
    match req.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    }
}

fn is_pxe_client(req: &Message) -> bool {
    matches!(req.opts().get(OptionCode::ClassIdentifier), Some(DhcpOption::ClassIdentifier(c)) if c.starts_with(b"PXEClient"))
}

/// Encodes a reply, padded to BOOTP's 300 bytes.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut buf = Vec::with_capacity(576);
    // Encoding into a Vec cannot fail for messages this module builds.
    if msg.encode(&mut Encoder::new(&mut buf)).is_err() {
        buf.clear();
    }
    if !buf.is_empty() && buf.len() < MIN_LEN {
        buf.resize(MIN_LEN, 0);
    }
    buf
}

/// A UDP socket on `0.0.0.0:port` that sees only `interface` (SO_BINDTODEVICE), so
/// several segments (and other DHCP servers on other interfaces) can coexist.
pub(crate) fn bind(interface: &str, port: Port) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(interface.as_bytes()))?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port.number())).into())?;
    UdpSocket::from_std(s.into())
}

pub(crate) async fn serve(
    sock: UdpSocket,
    port: Port,
    server: Arc<Mutex<DhcpServer>>,
    boots: BootTable,
    events: EventLog,
) {
    let mut buf = vec![0u8; 1500];
    loop {
        let (n, src) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "DHCP receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(req) = Message::decode(&mut Decoder::new(&buf[..n])) else {
            tracing::debug!(%src, "undecodable DHCP packet");
            continue;
        };
        let reply = server.lock().unwrap_or_else(PoisonError::into_inner).handle(
            &req,
            port,
            src,
            &boots,
            &events,
            Instant::now(),
        );
        if let Some(r) = reply {
            tracing::debug!(to = %r.to, kind = ?r.msg.opts().msg_type(), "DHCP reply");
            if let Err(e) = sock.send_to(&encode(&r.msg), r.to).await {
                tracing::warn!(error = %e, to = %r.to, "DHCP reply not sent");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use dcim_drivers::BootMode;

    use super::*;
    use crate::PreparedBoot;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x78, 0, 1];
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);

    fn cfg(mode: DhcpMode) -> Arc<NetbootConfig> {
        Arc::new(NetbootConfig::new("nb0", SERVER, mode, "http://10.78.0.1:8080", "/tmp"))
    }

    fn full(first: u8, last: u8) -> DhcpMode {
        DhcpMode::Full {
            first: Ipv4Addr::new(10, 78, 0, first),
            last: Ipv4Addr::new(10, 78, 0, last),
            prefix_len: 24,
            lease_secs: 600,
            dns_servers: vec![],
        }
    }

    fn boots_with(macs: &[[u8; 6]]) -> BootTable {
        let t = BootTable::default();
        for m in macs {
            t.insert(
                mac_from_bytes(m).unwrap(),
                PreparedBoot {
                    task_id: 1,
                    secret: "s".into(),
                    callback: "http://x".into(),
                    mode: BootMode::Diag { clear_hdd: dcim_core::ClearMode::None },
                    answer: serde_json::Value::Null,
                    prepared_at: Instant::now(),
                },
            );
        }
        t
    }

    /// A client request as bytes on the wire, the way a PXE ROM or iPXE builds it.
    fn wire(mac: [u8; 6], kind: MessageType, extra: &[DhcpOption]) -> Vec<u8> {
        let mut m = Message::default();
        m.set_xid(0x1234_5678).set_chaddr(&mac).set_flags(dhcproto::v4::Flags::default().set_broadcast());
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        for o in extra {
            m.opts_mut().insert(o.clone());
        }
        let mut buf = Vec::new();
        m.encode(&mut Encoder::new(&mut buf)).unwrap();
        buf
    }

    fn pxe_rom(arch: u16) -> Vec<DhcpOption> {
        vec![
            DhcpOption::ClassIdentifier(format!("PXEClient:Arch:{arch:05}:UNDI:002001").into_bytes()),
            DhcpOption::ClientSystemArchitecture(Architecture(arch)),
        ]
    }

    fn ipxe() -> Vec<DhcpOption> {
        let mut o = pxe_rom(0);
        o.push(DhcpOption::UserClass(b"iPXE".to_vec()));
        o.push(DhcpOption::Unknown(UnknownOption::new(OptionCode::Unknown(175), vec![19, 1, 1, 23, 1, 1])));
        o
    }

    /// Runs one request through the server and decodes the encoded answer.
    fn exchange(s: &mut DhcpServer, boots: &BootTable, bytes: &[u8], port: Port) -> Option<(Message, SocketAddrV4)> {
        let req = Message::decode(&mut Decoder::new(bytes)).unwrap();
        let src = SocketAddr::from(([0, 0, 0, 0], 68));
        let r = s.handle(&req, port, src, boots, &EventLog::default(), Instant::now())?;
        let out = encode(&r.msg);
        assert!(out.len() >= MIN_LEN);
        Some((Message::decode(&mut Decoder::new(&out)).unwrap(), r.to))
    }

    fn opt(m: &Message, code: u8) -> Option<&DhcpOption> {
        m.opts().get(OptionCode::from(code))
    }

    fn bootfile(m: &Message) -> String {
        match opt(m, 67) {
            Some(DhcpOption::BootfileName(b)) => String::from_utf8(b.clone()).unwrap(),
            o => panic!("no bootfile: {o:?}"),
        }
    }

    #[test]
    fn unknown_macs_get_nothing() {
        let mut s = DhcpServer::new(cfg(full(100, 199)));
        let boots = boots_with(&[[2, 0, 0, 0, 0, 9]]);
        assert!(exchange(&mut s, &boots, &wire(MAC, MessageType::Discover, &pxe_rom(0)), Port::Dhcp).is_none());
        let events = EventLog::default();
        let req = Message::decode(&mut Decoder::new(&wire(MAC, MessageType::Discover, &ipxe()))).unwrap();
        assert!(s.handle(&req, Port::Dhcp, SocketAddr::from(([0; 4], 68)), &boots, &events, Instant::now()).is_none());
        assert!(
            matches!(&events.snapshot()[0].kind, EventKind::DhcpIgnored { reason, .. } if reason.contains("no boot"))
        );
    }

    #[test]
    fn pxe_roms_get_the_loader_for_their_architecture() {
        let mut s = DhcpServer::new(cfg(full(100, 199)));
        let boots = boots_with(&[MAC]);
        let (offer, to) = exchange(&mut s, &boots, &wire(MAC, MessageType::Discover, &pxe_rom(0)), Port::Dhcp).unwrap();
        assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
        assert_eq!(offer.opcode(), Opcode::BootReply);
        assert_eq!(offer.xid(), 0x1234_5678);
        assert_eq!(offer.chaddr(), &MAC);
        assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 78, 0, 100));
        assert_eq!(offer.siaddr(), SERVER);
        assert_eq!(to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
        assert_eq!(bootfile(&offer), "undionly.kpxe");
        assert_eq!(offer.fname_str().unwrap().unwrap().trim_end_matches('\0'), "undionly.kpxe");
        assert!(opt(&offer, 175).is_none());
        // a provisioning network: no default route, no DNS
        assert!(opt(&offer, 3).is_none() && opt(&offer, 6).is_none());
        assert_eq!(opt(&offer, 1), Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0))));
        assert_eq!(opt(&offer, 54), Some(&DhcpOption::ServerIdentifier(SERVER)));

        for arch in [7, 9] {
            let (o, _) =
                exchange(&mut s, &boots, &wire(MAC, MessageType::Discover, &pxe_rom(arch)), Port::Dhcp).unwrap();
            assert_eq!(bootfile(&o), "snponly.efi");
        }
        assert!(exchange(&mut s, &boots, &wire(MAC, MessageType::Discover, &pxe_rom(11)), Port::Dhcp).is_none());
    }

    #[test]
    fn dns_servers_are_offered_when_configured() {
        let mut mode = full(100, 199);
        let dns = vec![Ipv4Addr::new(10, 78, 0, 2), Ipv4Addr::new(10, 78, 0, 3)];
        if let DhcpMode::Full { dns_servers, .. } = &mut mode {
            dns_servers.clone_from(&dns);
        }
        let mut s = DhcpServer::new(cfg(mode));
        let boots = boots_with(&[MAC]);
        let (offer, _) = exchange(&mut s, &boots, &wire(MAC, MessageType::Discover, &ipxe()), Port::Dhcp).unwrap();
        assert_eq!(opt(&offer, 6), Some(&DhcpOption::DomainNameServer(dns)));
        assert!(opt(&offer, 3).is_none(), "still no default route");
    }

    #[test]
    fn ipxe_gets_its_script_and_no_pxedhcp() {
        let mut s = DhcpServer::new(cfg(full(100, 199)));
        let boots = boots_with(&[MAC]);
        let (offer, _) = exchange(&mut s, &boots, &wire(MAC, MessageType::Discover, &ipxe()), Port::Dhcp).unwrap();
        assert_eq!(bootfile(&offer), "http://10.78.0.1:8080/boot/52-54-00-78-00-01.ipxe");
        match opt(&offer, 175) {
            Some(DhcpOption::Unknown(u)) => assert_eq!(u.data(), &[176, 1, 1]),
            o => panic!("no option 175: {o:?}"),
        }
    }

    #[test]
    fn request_for_the_offered_address_is_acked_and_kept() {
        let mut s = DhcpServer::new(cfg(full(100, 199)));
        let boots = boots_with(&[MAC, [2, 0, 0, 0, 0, 2]]);
        let (offer, _) = exchange(&mut s, &boots, &wire(MAC, MessageType::Discover, &ipxe()), Port::Dhcp).unwrap();
        let mut extra = ipxe();
        extra.push(DhcpOption::ServerIdentifier(SERVER));
        extra.push(DhcpOption::RequestedIpAddress(offer.yiaddr()));
        let (ack, _) = exchange(&mut s, &boots, &wire(MAC, MessageType::Request, &extra), Port::Dhcp).unwrap();
        assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(ack.yiaddr(), offer.yiaddr());
        assert_eq!(opt(&ack, 51), Some(&DhcpOption::AddressLeaseTime(600)));
        // the same machine gets the same address again, another one the next
        let (again, _) = exchange(&mut s, &boots, &wire(MAC, MessageType::Discover, &ipxe()), Port::Dhcp).unwrap();
        assert_eq!(again.yiaddr(), offer.yiaddr());
        let (other, _) =
            exchange(&mut s, &boots, &wire([2, 0, 0, 0, 0, 2], MessageType::Discover, &ipxe()), Port::Dhcp).unwrap();
        assert_eq!(other.yiaddr(), Ipv4Addr::new(10, 78, 0, 101));
    }

    #[test]
    fn wrong_address_is_naked_and_other_servers_choice_ignored() {
        let mut s = DhcpServer::new(cfg(full(100, 199)));
        let boots = boots_with(&[MAC]);
        exchange(&mut s, &boots, &wire(MAC, MessageType::Discover, &ipxe()), Port::Dhcp).unwrap();
        let mut extra = ipxe();
        extra.push(DhcpOption::ServerIdentifier(SERVER));
        extra.push(DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 78, 0, 150)));
        let (nak, to) = exchange(&mut s, &boots, &wire(MAC, MessageType::Request, &extra), Port::Dhcp).unwrap();
        assert_eq!(nak.opts().msg_type(), Some(MessageType::Nak));
        assert_eq!(to.ip(), &Ipv4Addr::BROADCAST);

        let mut extra = ipxe();
        extra.push(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 78, 0, 254)));
        extra.push(DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 78, 0, 100)));
        assert!(exchange(&mut s, &boots, &wire(MAC, MessageType::Request, &extra), Port::Dhcp).is_none());
        assert_eq!(s.lease_of(&mac_from_bytes(&MAC).unwrap()), None);
    }

    #[test]
    fn a_full_range_offers_nothing() {
        let mut s = DhcpServer::new(cfg(full(100, 100)));
        let boots = boots_with(&[MAC, [2, 0, 0, 0, 0, 2]]);
        assert!(exchange(&mut s, &boots, &wire(MAC, MessageType::Discover, &ipxe()), Port::Dhcp).is_some());
        let second = wire([2, 0, 0, 0, 0, 2], MessageType::Discover, &ipxe());
        assert!(exchange(&mut s, &boots, &second, Port::Dhcp).is_none());
    }

    #[test]
    fn proxy_mode_sends_boot_options_only() {
        let mut s = DhcpServer::new(cfg(DhcpMode::Proxy));
        let boots = boots_with(&[MAC]);
        let mut rom = pxe_rom(7);
        rom.push(DhcpOption::ClientMachineIdentifier(vec![0; 17]));
        let (offer, to) = exchange(&mut s, &boots, &wire(MAC, MessageType::Discover, &rom), Port::Dhcp).unwrap();
        assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
        assert_eq!(offer.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(to.ip(), &Ipv4Addr::BROADCAST);
        assert_eq!(bootfile(&offer), "snponly.efi");
        assert_eq!(opt(&offer, 60), Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec())));
        assert!(opt(&offer, 97).is_some());
        assert!(opt(&offer, 1).is_none() && opt(&offer, 51).is_none());

        // the DHCP server proper acks addresses; the proxy stays silent on 67 ...
        let req = wire(MAC, MessageType::Request, &rom);
        assert!(exchange(&mut s, &boots, &req, Port::Dhcp).is_none());
        // ... and answers the boot server request on 4011, back to its sender
        let r = Message::decode(&mut Decoder::new(&req)).unwrap();
        let src = SocketAddr::from(([10, 78, 0, 50], 68));
        let ack = s.handle(&r, Port::Pxe, src, &boots, &EventLog::default(), Instant::now()).unwrap();
        assert_eq!(ack.msg.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(ack.to, SocketAddrV4::new(Ipv4Addr::new(10, 78, 0, 50), 68));

        // a client that is not PXE gets nothing from a proxy
        let plain = wire(MAC, MessageType::Discover, &[]);
        assert!(exchange(&mut s, &boots, &plain, Port::Dhcp).is_none());
    }
}
