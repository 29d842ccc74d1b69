//! The netboot service: what a server meets on the wire when its BMC turns it on with
//! "boot from the network" — DHCPv4, the IPv6 router advertisement iPXE waits for,
//! TFTP for the iPXE loaders, and HTTP for the per-MAC iPXE script and the files it
//! loads. One [`Netboot`] serves one provisioning segment (one per location).
//!
//! It exists so that dcim needs no dnsmasq: the task engine calls
//! [`BootDriver::prepare`] before powering a server on and [`BootDriver::cleanup`] when
//! the task ends, and the service answers only the MACs that have a prepared boot in
//! between. A machine nobody prepared gets no DHCP offer and no script, so dcim can
//! share a segment with servers it must not reinstall, and a boot's secret stops
//! being served the moment its task ends.
//!
//! Wire formats come from crates (`dhcproto`, `async-tftp`); the DHCP server logic,
//! the leases and the router advertisement are ours. The service must not decide
//! what to boot or when: that is the task engine's, which hands it a
//! [`BootRequest`]. It touches no database.

mod boots;
mod dhcp;
mod http;
mod ra;
mod segments;
mod tftp;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use dcim_core::Mac;
use dcim_drivers::{BootDriver, BootMode, BootRequest, DriverError};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

pub use boots::{BootTable, Event, EventKind, EventLog, PreparedBoot, mac_hyphens};
pub use dhcp::{BootChoice, DhcpServer, Port, Reply};
pub use ra::router_advertisement;
pub use segments::{Segment, Segments};

/// How DHCPv4 is served on the segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum DhcpMode {
    /// dcim is the segment's DHCP server: addresses from `first..=last`, no router (a
    /// machine being provisioned talks to dcim and the segment only).
    Full {
        first: Ipv4Addr,
        last: Ipv4Addr,
        /// The segment's prefix length (option 1).
        prefix_len: u8,
        /// Seconds; the agent's own DHCP client renews within it.
        #[serde(default = "default_lease_secs")]
        lease_secs: u32,
        /// DNS servers on the segment (option 6), so that image and installer URLs may
        /// name hosts; none by default.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        dns_servers: Vec<Ipv4Addr>,
    },
    /// Another server hands out addresses; dcim adds only the PXE boot options
    /// (RFC 4578 proxyDHCP, on ports 67 and 4011).
    Proxy,
}

fn default_lease_secs() -> u32 {
    3600
}

/// Everything the service needs to know about its segment. All paths and names are
/// those of a Debian host with the `ipxe` package installed unless set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetbootConfig {
    /// The interface on the provisioning segment (DHCP and RA are bound to it).
    pub interface: String,
    /// dcim's IPv4 address on that interface: DHCP server id, TFTP server.
    pub server_ip: Ipv4Addr,
    #[serde(flatten)]
    pub dhcp: DhcpMode,
    /// Directory the TFTP server serves read-only.
    #[serde(default = "default_tftp_root")]
    pub tftp_root: PathBuf,
    #[serde(default = "default_tftp_port")]
    pub tftp_port: u16,
    /// Loader for BIOS PXE ROMs (client architecture 0).
    #[serde(default = "default_bios_loader")]
    pub bios_loader: String,
    /// Loader for x86-64 UEFI PXE (client architectures 7 and 9).
    #[serde(default = "default_efi_loader")]
    pub efi_loader: String,
    /// Where machines reach [`Netboot::router`], without a trailing slash
    /// (`http://10.78.0.1:8080`).
    pub http_base: String,
    /// Directory of kernels, initramfs and images, served under `/files/`.
    pub boot_files_dir: PathBuf,
    #[serde(default = "default_kernel")]
    pub kernel: String,
    #[serde(default = "default_initrd")]
    pub initrd: String,
    /// Extra kernel command line (console, panic handling), before dcim's own arguments.
    #[serde(default)]
    pub kernel_args: String,
    /// Send router advertisements (lifetime 0) on the interface: only on segments dcim owns.
    #[serde(default = "default_true")]
    pub router_advertisement: bool,
    /// Seconds between unsolicited advertisements; solicitations are answered at once.
    #[serde(default = "default_ra_interval")]
    pub ra_interval_secs: u64,
}

fn default_tftp_root() -> PathBuf {
    PathBuf::from("/usr/lib/ipxe")
}
fn default_tftp_port() -> u16 {
    69
}
fn default_bios_loader() -> String {
    "undionly.kpxe".into()
}
fn default_efi_loader() -> String {
    "snponly.efi".into()
}
fn default_kernel() -> String {
    "vmlinuz".into()
}
fn default_initrd() -> String {
    "initrd.gz".into()
}
fn default_true() -> bool {
    true
}
fn default_ra_interval() -> u64 {
    120
}

impl NetbootConfig {
    /// A configuration with the defaults above.
    pub fn new(
        interface: impl Into<String>,
        server_ip: Ipv4Addr,
        dhcp: DhcpMode,
        http_base: impl Into<String>,
        boot_files_dir: impl Into<PathBuf>,
    ) -> Self {
        NetbootConfig {
            interface: interface.into(),
            server_ip,
            dhcp,
            tftp_root: default_tftp_root(),
            tftp_port: default_tftp_port(),
            bios_loader: default_bios_loader(),
            efi_loader: default_efi_loader(),
            http_base: http_base.into(),
            boot_files_dir: boot_files_dir.into(),
            kernel: default_kernel(),
            initrd: default_initrd(),
            kernel_args: String::new(),
            router_advertisement: true,
            ra_interval_secs: default_ra_interval(),
        }
    }

    fn validate(&self) -> Result<(), NetbootError> {
        let bad = |m: String| Err(NetbootError::Config(m));
        if self.interface.is_empty() || self.interface.len() > 15 {
            return bad(format!("'{}' is not an interface name", self.interface));
        }
        if let DhcpMode::Full { first, last, prefix_len, .. } = &self.dhcp {
            if first > last || *prefix_len > 30 {
                return bad(format!("the range {first}-{last}/{prefix_len} is empty"));
            }
            let mask = u32::MAX << (32 - prefix_len);
            let net = u32::from(self.server_ip) & mask;
            if u32::from(*first) & mask != net || u32::from(*last) & mask != net {
                return bad(format!("the range {first}-{last} is not in {}/{prefix_len}", self.server_ip));
            }
        }
        if !self.http_base.starts_with("http://") && !self.http_base.starts_with("https://")
            || self.http_base.ends_with('/')
        {
            return bad(format!("http_base '{}' must be http[s]://host[:port] without a trailing /", self.http_base));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetbootError {
    #[error("netboot configuration: {0}")]
    Config(String),
    #[error("cannot open the {what} socket")]
    Bind {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The netboot service of one segment. Cheap to clone: clones share the boot table
/// and the event log, so the same value is the [`BootDriver`] the task engine holds,
/// the HTTP router's state and the DHCP/TFTP/RA servers' view.
#[derive(Clone)]
pub struct Netboot {
    cfg: Arc<NetbootConfig>,
    boots: BootTable,
    events: EventLog,
}

impl Netboot {
    pub fn new(cfg: NetbootConfig) -> Result<Self, NetbootError> {
        cfg.validate()?;
        Ok(Netboot { cfg: Arc::new(cfg), boots: BootTable::default(), events: EventLog::default() })
    }

    pub fn config(&self) -> &NetbootConfig {
        &self.cfg
    }

    pub fn boots(&self) -> &BootTable {
        &self.boots
    }

    /// What the service answered lately (DHCP, TFTP, HTTP), oldest first.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// The HTTP side: `GET /boot/{mac}.ipxe`, `GET /boot/{mac}/answer`, `GET /files/...`.
    /// Mount it in dcim's router or serve it on a port of its own on the segment.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// Opens the DHCP, TFTP and (if configured) RA sockets and serves them until the
    /// returned [`NetbootServers`] is dropped. Needs root (or CAP_NET_BIND_SERVICE,
    /// CAP_NET_RAW for the RA and CAP_NET_RAW/ADMIN for SO_BINDTODEVICE).
    pub async fn start(&self) -> Result<NetbootServers, NetbootError> {
        let mut tasks = JoinSet::new();
        let server = Arc::new(std::sync::Mutex::new(DhcpServer::new(self.cfg.clone())));
        let ports: &[Port] = match self.cfg.dhcp {
            DhcpMode::Full { .. } => &[Port::Dhcp],
            DhcpMode::Proxy => &[Port::Dhcp, Port::Pxe],
        };
        for &port in ports {
            let sock =
                dhcp::bind(&self.cfg.interface, port).map_err(|source| NetbootError::Bind { what: "DHCP", source })?;
            tasks.spawn(dhcp::serve(sock, port, server.clone(), self.boots.clone(), self.events.clone()));
        }
        let tftp = tftp::build(&self.cfg, self.events.clone())
            .await
            .map_err(|source| NetbootError::Bind { what: "TFTP", source })?;
        tasks.spawn(tftp::serve(tftp));
        if self.cfg.router_advertisement {
            let ra = ra::Advertiser::open(&self.cfg.interface)
                .map_err(|source| NetbootError::Bind { what: "ICMPv6 (router advertisement)", source })?;
            tasks.spawn(ra.serve(std::time::Duration::from_secs(self.cfg.ra_interval_secs), self.events.clone()));
        }
        tracing::info!(interface = %self.cfg.interface, server = %self.cfg.server_ip, "netboot service started");
        Ok(NetbootServers { _tasks: tasks })
    }
}

/// The running DHCP, TFTP and RA servers; dropping it stops them.
pub struct NetbootServers {
    _tasks: JoinSet<()>,
}

/// Refuses values that would break out of the iPXE script or the kernel command
/// line they are written into (whitespace, quotes, `$` settings expansion).
fn check_token(field: &str, v: &str) -> Result<(), DriverError> {
    let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && !b"$\"'\\`;&|<>".contains(&b));
    if ok { Ok(()) } else { Err(DriverError::Refused(format!("{field} cannot be put on a kernel command line"))) }
}

fn parse_mac(raw: &str) -> Result<Mac, DriverError> {
    Mac::parse("mac", raw).map_err(|e| DriverError::Refused(e.to_string()))
}

pub(crate) fn mode_name(mode: &BootMode) -> &'static str {
    match mode {
        BootMode::Diag { .. } => "diag",
        BootMode::Wipe { .. } => "wipe",
        BootMode::Install { .. } => "install",
    }
}

#[async_trait]
impl BootDriver for Netboot {
    async fn prepare(&self, req: &BootRequest) -> Result<(), DriverError> {
        let mac = parse_mac(&req.mac)?;
        check_token("secret", &req.secret)?;
        check_token("callback", &req.callback)?;
        self.boots.insert(
            mac,
            PreparedBoot {
                task_id: req.task_id,
                secret: req.secret.clone(),
                callback: req.callback.clone(),
                mode: req.mode.clone(),
                answer: req.answer.clone(),
                prepared_at: Instant::now(),
            },
        );
        tracing::info!(%mac, task = req.task_id, mode = mode_name(&req.mode), "netboot prepared");
        Ok(())
    }

    async fn cleanup(&self, task_id: i64, mac: &str) -> Result<(), DriverError> {
        let mac = parse_mac(mac)?;
        if self.boots.remove(&mac, task_id) {
            tracing::info!(%mac, task = task_id, "netboot removed");
        }
        Ok(())
    }

    /// The agents this segment boots report through its own listener.
    fn agent_callback(&self, _location: Option<i64>) -> Option<String> {
        Some(format!("{}/agent/v1/task", self.cfg.http_base.trim_end_matches('/')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NetbootConfig {
        NetbootConfig::new(
            "nb0",
            Ipv4Addr::new(10, 78, 0, 1),
            DhcpMode::Full {
                first: Ipv4Addr::new(10, 78, 0, 100),
                last: Ipv4Addr::new(10, 78, 0, 199),
                prefix_len: 24,
                lease_secs: 3600,
                dns_servers: vec![],
            },
            "http://10.78.0.1:8080",
            "/tmp",
        )
    }

    fn req(task_id: i64, secret: &str) -> BootRequest {
        BootRequest {
            task_id,
            secret: secret.into(),
            callback: "http://10.78.0.1:8080/agent".into(),
            mac: "52-54-00-78-00-01".into(),
            mode: BootMode::Diag { clear_hdd: dcim_core::ClearMode::None },
            answer: serde_json::json!({}),
            location_id: None,
        }
    }

    #[test]
    fn config_is_validated() {
        assert!(Netboot::new(cfg()).is_ok());
        let mut c = cfg();
        c.http_base = "http://10.78.0.1:8080/".into();
        assert!(Netboot::new(c).is_err());
        let mut c = cfg();
        c.dhcp = DhcpMode::Full {
            first: Ipv4Addr::new(10, 79, 0, 100),
            last: Ipv4Addr::new(10, 79, 0, 199),
            prefix_len: 24,
            lease_secs: 60,
            dns_servers: vec![],
        };
        assert!(Netboot::new(c).is_err());
    }

    #[test]
    fn config_reads_from_json() {
        let c: NetbootConfig = serde_json::from_value(serde_json::json!({
            "interface": "eth1", "server_ip": "10.0.0.1", "mode": "proxy",
            "http_base": "http://10.0.0.1:8080", "boot_files_dir": "/srv/dcim"
        }))
        .unwrap();
        assert_eq!(c.dhcp, DhcpMode::Proxy);
        assert_eq!(c.bios_loader, "undionly.kpxe");
        assert!(c.router_advertisement);
        let c: NetbootConfig = serde_json::from_value(serde_json::json!({
            "interface": "eth1", "server_ip": "10.0.0.1", "mode": "full", "first": "10.0.0.100",
            "last": "10.0.0.199", "prefix_len": 24, "http_base": "http://10.0.0.1:8080", "boot_files_dir": "/srv"
        }))
        .unwrap();
        assert!(matches!(c.dhcp, DhcpMode::Full { lease_secs: 3600, prefix_len: 24, .. }));
    }

    #[tokio::test]
    async fn prepare_and_cleanup_follow_the_task() {
        let nb = Netboot::new(cfg()).unwrap();
        let mac = parse_mac("52:54:00:78:00:01").unwrap();
        nb.prepare(&req(7, "s3cret")).await.unwrap();
        assert!(nb.boots().contains(&mac));
        // a newer task supersedes; cleanup of the older one leaves it
        nb.prepare(&req(8, "other")).await.unwrap();
        nb.cleanup(7, "52:54:00:78:00:01").await.unwrap();
        assert_eq!(nb.boots().get(&mac).unwrap().task_id, 8);
        nb.cleanup(8, "52:54:00:78:00:01").await.unwrap();
        assert!(nb.boots().is_empty());
        // idempotent
        nb.cleanup(8, "52:54:00:78:00:01").await.unwrap();
    }

    #[tokio::test]
    async fn secrets_that_would_break_the_command_line_are_refused() {
        let nb = Netboot::new(cfg()).unwrap();
        assert!(matches!(nb.prepare(&req(1, "a b")).await, Err(DriverError::Refused(_))));
        assert!(matches!(nb.prepare(&req(1, "${x}")).await, Err(DriverError::Refused(_))));
        assert!(nb.boots().is_empty());
    }
}
