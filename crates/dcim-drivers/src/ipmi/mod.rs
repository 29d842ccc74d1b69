//! IPMI over LAN power driver: chassis status and control and the next boot device,
//! through IPMI v2.0 RMCP+ sessions (`IPMI v2(lanplus)`: cipher suite 17 or 3) or
//! IPMI v1.5 sessions (`IPMI v1.5/v2`). A session lives for one driver call: BMCs
//! hold few sessions and drop idle ones, so keeping them open buys little and risks
//! exhausting the BMC. The cipher suite a BMC accepted is remembered per address.
//!
//! `wire` is the byte layout and crypto, `session` the UDP exchange with timeouts and
//! retries; this module maps chassis commands onto [`PowerDriver`].

mod session;
pub mod wire;

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

pub use session::{Session, Target, Timing};
use wire::{ChassisControl, Suite};

use crate::{BootDevice, DriverError, PowerDriver, PowerState};

/// The IPMI port when the address names none.
pub const DEFAULT_PORT: u16 = 623;

/// Shared by every IPMI driver of a process: timing and what each BMC speaks.
pub struct Ipmi {
    timing: Timing,
    suites: Mutex<HashMap<SocketAddr, Suite>>,
}

impl Ipmi {
    pub fn new(timing: Timing) -> Self {
        Ipmi { timing, suites: Mutex::new(HashMap::new()) }
    }

    /// A driver for one BMC. `v15` selects IPMI v1.5 sessions.
    pub fn bmc(
        self: &Arc<Self>,
        address: &str,
        user: &str,
        password: &str,
        v15: bool,
    ) -> Result<IpmiPower, DriverError> {
        Ok(IpmiPower {
            ipmi: self.clone(),
            target: Target {
                addr: resolve(address, DEFAULT_PORT)?,
                name: address.to_owned(),
                user: user.to_owned(),
                password: password.to_owned(),
            },
            v15,
        })
    }
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address to a socket address.
pub fn resolve(address: &str, default_port: u16) -> Result<SocketAddr, DriverError> {
    let a = address.trim();
    if let Ok(ip) = a.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    let with_port = if a.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        a.to_owned()
    } else {
        format!("{a}:{default_port}")
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| DriverError::Unreachable(format!("BMC address '{address}' does not resolve")))
}

/// A server's BMC, spoken to over IPMI.
pub struct IpmiPower {
    ipmi: Arc<Ipmi>,
    target: Target,
    v15: bool,
}

impl IpmiPower {
    /// A session, raised to ADMINISTRATOR when `admin` (status needs only USER).
    async fn session(&self, admin: bool) -> Result<Session, DriverError> {
        let mut s = self.open().await?;
        if admin && let Err(e) = s.raise_privilege().await {
            s.close().await;
            return Err(e);
        }
        Ok(s)
    }

    async fn open(&self) -> Result<Session, DriverError> {
        let timing = self.ipmi.timing;
        if self.v15 {
            return Session::open_v15(&self.target, timing).await;
        }
        let known = self.ipmi.suites.lock().expect("not poisoned").get(&self.target.addr).copied();
        // The suite that worked last time first; the rest if the BMC was reconfigured.
        let mut order = vec![Suite::S17, Suite::S3];
        if let Some(k) = known {
            order.retain(|s| *s != k);
            order.insert(0, k);
        }
        for suite in order {
            if let Some(s) = Session::open_v2(&self.target, timing, suite).await? {
                self.ipmi.suites.lock().expect("not poisoned").insert(self.target.addr, suite);
                return Ok(s);
            }
        }
        Err(DriverError::Unsupported(format!(
            "BMC {} accepts neither cipher suite 17 nor 3 (RAKP-HMAC-SHA256/SHA1 with AES-CBC-128); enable one of them",
            self.target.name
        )))
    }

    /// Runs one command in a fresh session.
    async fn one(&self, admin: bool, netfn: u8, cmd: u8, data: &[u8]) -> Result<Vec<u8>, DriverError> {
        let mut s = self.session(admin).await?;
        let r = s.command(netfn, cmd, data).await;
        s.close().await;
        r
    }

    async fn control(&self, action: ChassisControl) -> Result<(), DriverError> {
        self.one(true, wire::NETFN_CHASSIS, wire::CMD_CHASSIS_CONTROL, &[action as u8]).await.map(drop)
    }

    /// Get Device ID: proves the address and credentials, and names the BMC.
    pub async fn device_id(&self) -> Result<DeviceId, DriverError> {
        let d = self.one(false, wire::NETFN_APP, wire::CMD_GET_DEVICE_ID, &[]).await?;
        if d.len() < 11 {
            return Err(DriverError::Protocol(format!("BMC {}: a short Get Device ID answer", self.target.name)));
        }
        Ok(DeviceId {
            firmware: format!("{}.{:02x}", d[2] & 0x7f, d[3]),
            ipmi_version: format!("{}.{}", d[4] & 0x0f, d[4] >> 4),
            manufacturer: u32::from_le_bytes([d[6], d[7], d[8], 0]),
            product: u16::from_le_bytes([d[9], d[10]]),
        })
    }

    /// ACPI soft shutdown: asks the operating system to power off.
    pub async fn soft_off(&self) -> Result<(), DriverError> {
        self.control(ChassisControl::SoftShutdown).await
    }

    /// Power cycle: off, then on after the BMC's interval.
    pub async fn cycle(&self) -> Result<(), DriverError> {
        self.control(ChassisControl::PowerCycle).await
    }
}

/// What Get Device ID tells about a BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceId {
    pub firmware: String,
    pub ipmi_version: String,
    /// IANA enterprise number of the maker.
    pub manufacturer: u32,
    pub product: u16,
}

#[async_trait]
impl PowerDriver for IpmiPower {
    async fn status(&self) -> Result<PowerState, DriverError> {
        let d = self.one(false, wire::NETFN_CHASSIS, wire::CMD_GET_CHASSIS_STATUS, &[]).await?;
        let byte = d.first().ok_or_else(|| DriverError::Protocol("an empty chassis status".into()))?;
        Ok(if byte & 1 == 1 { PowerState::On } else { PowerState::Off })
    }

    async fn on(&self) -> Result<(), DriverError> {
        self.control(ChassisControl::PowerUp).await
    }

    async fn off(&self) -> Result<(), DriverError> {
        self.control(ChassisControl::PowerDown).await
    }

    async fn reset(&self) -> Result<(), DriverError> {
        // A hard reset of a chassis that is off does nothing on most BMCs: power it up instead.
        let mut s = self.session(true).await?;
        let r = async {
            let st = s.command(wire::NETFN_CHASSIS, wire::CMD_GET_CHASSIS_STATUS, &[]).await?;
            let action = if st.first().is_some_and(|b| b & 1 == 1) {
                ChassisControl::HardReset
            } else {
                ChassisControl::PowerUp
            };
            s.command(wire::NETFN_CHASSIS, wire::CMD_CHASSIS_CONTROL, &[action as u8]).await.map(drop)
        }
        .await;
        s.close().await;
        r
    }

    async fn set_boot_device(&self, device: BootDevice, efi: bool, persistent: bool) -> Result<(), DriverError> {
        let flags = wire::boot_flags(device == BootDevice::Pxe, efi, persistent);
        self.one(true, wire::NETFN_CHASSIS, wire::CMD_SET_SYSTEM_BOOT_OPTIONS, &flags).await.map(drop)
    }
}

/// Default timing: a lost datagram is sent again after a second, four tries in all.
impl Default for Timing {
    fn default() -> Self {
        Timing { attempt: Duration::from_secs(1), attempts: 4 }
    }
}
