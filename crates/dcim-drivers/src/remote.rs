//! Drivers of devices behind a remote site: the call a central makes of a device, as
//! it travels to the `dcim site` process beside the device and back.
//!
//! A [`Call`] names the operation and carries everything the site needs to perform it,
//! credentials included (the site keeps none at rest); an [`Answer`] or a
//! [`DriverError`] comes back. The central side is a set of drivers ([`RemotePower`],
//! [`RemoteSwitch`], [`RemotePdu`], [`RemoteBoot`]) over a [`SiteLink`], the transport
//! (the central's call queue); the site side is [`perform`], which drives the device
//! with the site's own [`Drivers`]. Which devices travel is the [`SiteRouter`]'s
//! answer: the site serving the device's location, or none (the direct path).
//!
//! The protocol is versioned by [`PROTOCOL`]: a site and a central of different major
//! versions refuse each other, naming both.
//!
//! **Once, across a central's crash.** A task step runs inside a [`CallScope`] named
//! after the task, the step and how often it has waited; each action call it makes
//! (power, boot device, port, outlet, boot preparation) gets a key from that scope, in
//! order. A process that resumes the task after another died, or a step tried again
//! after a call timed out, runs with the same scope, so its calls carry the same keys:
//! the central's queue joins a call still in flight under that key, and the site
//! answers a key it has performed with the success it kept, without touching the
//! device again. A failure is not kept: the step's next attempt performs the call
//! again. Reads (power status, ports, outlets) are not keyed: a step reads again to
//! see the device as it is now.

use std::sync::Arc;

use async_trait::async_trait;
use dcim_core::{BmcType, DeviceProtocol, OutletStatus, PortStatus};
use serde::{Deserialize, Serialize};

use crate::{
    BmcAccess, BootDevice, BootDriver, BootRequest, DeviceAccess, DriverError, Drivers, OutletInfo, PduDriver,
    PortInfo, PortState, PowerDriver, PowerState, SwitchDriver,
};

/// The site protocol's version, `major.minor`: a minor version adds calls a peer of the
/// same major version may refuse as unsupported; a major version changes what both
/// must understand.
pub const PROTOCOL: (u32, u32) = (1, 0);

/// [`PROTOCOL`] as written in the link's header (`1.0`).
pub fn protocol_string() -> String {
    format!("{}.{}", PROTOCOL.0, PROTOCOL.1)
}

/// Whether a peer's protocol (`major.minor`) can be spoken with; else what to say.
pub fn check_protocol(theirs: &str, who: &str) -> Result<(), String> {
    let major = theirs.split('.').next().and_then(|m| m.trim().parse::<u32>().ok());
    match major {
        Some(m) if m == PROTOCOL.0 => Ok(()),
        _ => Err(format!(
            "{who} speaks site protocol {theirs:?}, this dcim speaks {}; upgrade the older side so that both \
             have the same major version",
            protocol_string()
        )),
    }
}

/// A BMC as a call carries it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteBmc {
    pub kind: BmcType,
    pub address: String,
    pub user: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// A Redfish BMC's pinned certificate, as `ab:cd:...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
}

impl From<&BmcAccess> for RemoteBmc {
    fn from(b: &BmcAccess) -> Self {
        RemoteBmc {
            kind: b.kind,
            address: b.address.clone(),
            user: b.user.clone(),
            password: b.password.clone(),
            mac: b.mac.clone(),
            tls_fingerprint: b.tls_fingerprint.as_ref().map(dcim_tls::fingerprint),
        }
    }
}

impl RemoteBmc {
    fn access(&self) -> Result<BmcAccess, DriverError> {
        let tls_fingerprint = match &self.tls_fingerprint {
            None => None,
            Some(f) => Some(
                dcim_tls::parse_fingerprint(f)
                    .ok_or_else(|| DriverError::Protocol("the call's BMC fingerprint is not a SHA-256".into()))?,
            ),
        };
        Ok(BmcAccess {
            kind: self.kind,
            address: self.address.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            mac: self.mac.clone(),
            tls_fingerprint,
            location: None,
        })
    }
}

/// A switch or PDU as a call carries it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteDevice {
    pub protocol: DeviceProtocol,
    /// A PDU's MIB family; empty for a switch.
    #[serde(default)]
    pub model: String,
    pub address: String,
    /// The protocol's access data (SNMP community or v3 user and keys) as JSON.
    pub secret: String,
}

impl RemoteDevice {
    fn access(&self) -> DeviceAccess {
        DeviceAccess { address: self.address.clone(), secret: self.secret.clone(), location: None }
    }
}

/// One driver call, as the central sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Call {
    PowerStatus { bmc: RemoteBmc },
    PowerOn { bmc: RemoteBmc },
    PowerOff { bmc: RemoteBmc },
    PowerReset { bmc: RemoteBmc },
    SetBootDevice { bmc: RemoteBmc, device: BootDevice, efi: bool, persistent: bool },
    SwitchPorts { switch: RemoteDevice },
    SwitchSetAdmin { switch: RemoteDevice, index: i64, up: bool },
    SwitchOperStatus { switch: RemoteDevice, index: i64 },
    SwitchPortStates { switch: RemoteDevice },
    PduOutlets { pdu: RemoteDevice },
    PduOutletStatus { pdu: RemoteDevice, index: i64 },
    PduSetOutlet { pdu: RemoteDevice, index: i64, on: bool },
    PduRebootOutlet { pdu: RemoteDevice, index: i64 },
    BootPrepare { bmc_kind: Option<BmcType>, request: BootRequest },
    BootCleanup { bmc_kind: Option<BmcType>, task_id: i64, mac: String, location_id: Option<i64> },
}

impl Call {
    /// Whether it changes the device (and is performed once per key).
    pub fn is_action(&self) -> bool {
        matches!(
            self,
            Call::PowerOn { .. }
                | Call::PowerOff { .. }
                | Call::PowerReset { .. }
                | Call::SetBootDevice { .. }
                | Call::SwitchSetAdmin { .. }
                | Call::PduSetOutlet { .. }
                | Call::PduRebootOutlet { .. }
                | Call::BootPrepare { .. }
        )
    }

    /// The operation's name, as logs and metrics give it.
    pub fn op(&self) -> &'static str {
        match self {
            Call::PowerStatus { .. } => "power_status",
            Call::PowerOn { .. } => "power_on",
            Call::PowerOff { .. } => "power_off",
            Call::PowerReset { .. } => "power_reset",
            Call::SetBootDevice { .. } => "set_boot_device",
            Call::SwitchPorts { .. } => "switch_ports",
            Call::SwitchSetAdmin { .. } => "switch_set_admin",
            Call::SwitchOperStatus { .. } => "switch_oper_status",
            Call::SwitchPortStates { .. } => "switch_port_states",
            Call::PduOutlets { .. } => "pdu_outlets",
            Call::PduOutletStatus { .. } => "pdu_outlet_status",
            Call::PduSetOutlet { .. } => "pdu_set_outlet",
            Call::PduRebootOutlet { .. } => "pdu_reboot_outlet",
            Call::BootPrepare { .. } => "boot_prepare",
            Call::BootCleanup { .. } => "boot_cleanup",
        }
    }
}

/// What a call answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Answer {
    Done,
    Power(PowerState),
    Ports(Vec<PortInfo>),
    PortStatus(PortStatus),
    PortStates(Vec<PortState>),
    Outlets(Vec<OutletInfo>),
    OutletStatus(OutletStatus),
}

/// A call's result as it travels back.
pub type Outcome = Result<Answer, DriverError>;

/// Carries calls to one site and brings their results back.
#[async_trait]
pub trait SiteLink: Send + Sync {
    async fn call(&self, call: Call, location: i64) -> Outcome;
    /// Who holds what this site prepares (`site:ID@PROCESS`, the site and its
    /// process as it last said): a network boot prepared there outlives the central
    /// process that asked for it, not the site's process.
    fn holder(&self) -> String;
}

tokio::task_local! {
    static SCOPE: CallScope;
}

/// The calls of one run of a task's step; see the module.
pub struct CallScope {
    prefix: String,
    seq: std::sync::atomic::AtomicU32,
}

/// Runs `f` (a task step) with its calls keyed `{prefix}/{n}`.
pub async fn in_scope<F: std::future::Future>(prefix: String, f: F) -> F::Output {
    SCOPE.scope(CallScope { prefix, seq: std::sync::atomic::AtomicU32::new(0) }, f).await
}

/// The current step's scope name, outside any step none.
pub fn scope_prefix() -> Option<String> {
    SCOPE.try_with(|s| s.prefix.clone()).ok()
}

/// The key of the next action call of the current step, outside any step none.
fn next_key() -> Option<String> {
    SCOPE.try_with(|s| format!("{}/{}", s.prefix, s.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst))).ok()
}

/// What travels to a site: the call, and its key when it is an action of a task's step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Keyed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub call: Call,
}

impl Keyed {
    /// Keys `call` from the current step's scope when it is an action.
    pub fn new(call: Call) -> Keyed {
        let key = if call.is_action() { next_key() } else { None };
        Keyed { key, call }
    }
}

/// Which site, if any, serves a location.
pub trait SiteRouter: Send + Sync {
    fn route(&self, location: i64) -> Option<Arc<dyn SiteLink>>;
}

/// What an answer of the wrong kind means: the site and the central disagree.
fn mismatch(call: &str, a: &Answer) -> DriverError {
    DriverError::Protocol(format!("the site answered {call} with {a:?}"))
}

/// A call that answers nothing but success.
async fn done(link: &Arc<dyn SiteLink>, location: i64, call: Call) -> Result<(), DriverError> {
    let op = call.op();
    match link.call(call, location).await? {
        Answer::Done => Ok(()),
        a => Err(mismatch(op, &a)),
    }
}

/// A BMC behind a site.
pub struct RemotePower {
    pub(crate) link: Arc<dyn SiteLink>,
    pub(crate) location: i64,
    pub(crate) bmc: RemoteBmc,
}

#[async_trait]
impl PowerDriver for RemotePower {
    async fn status(&self) -> Result<PowerState, DriverError> {
        match self.link.call(Call::PowerStatus { bmc: self.bmc.clone() }, self.location).await? {
            Answer::Power(p) => Ok(p),
            a => Err(mismatch("power_status", &a)),
        }
    }
    async fn on(&self) -> Result<(), DriverError> {
        done(&self.link, self.location, Call::PowerOn { bmc: self.bmc.clone() }).await
    }
    async fn off(&self) -> Result<(), DriverError> {
        done(&self.link, self.location, Call::PowerOff { bmc: self.bmc.clone() }).await
    }
    async fn reset(&self) -> Result<(), DriverError> {
        done(&self.link, self.location, Call::PowerReset { bmc: self.bmc.clone() }).await
    }
    async fn set_boot_device(&self, device: BootDevice, efi: bool, persistent: bool) -> Result<(), DriverError> {
        done(&self.link, self.location, Call::SetBootDevice { bmc: self.bmc.clone(), device, efi, persistent }).await
    }
}

/// A switch behind a site.
pub struct RemoteSwitch {
    pub(crate) link: Arc<dyn SiteLink>,
    pub(crate) location: i64,
    pub(crate) switch: RemoteDevice,
}

#[async_trait]
impl SwitchDriver for RemoteSwitch {
    async fn ports(&self) -> Result<Vec<PortInfo>, DriverError> {
        match self.link.call(Call::SwitchPorts { switch: self.switch.clone() }, self.location).await? {
            Answer::Ports(ports) => Ok(ports),
            a => Err(mismatch("switch_ports", &a)),
        }
    }
    async fn set_admin(&self, index: i64, up: bool) -> Result<(), DriverError> {
        done(&self.link, self.location, Call::SwitchSetAdmin { switch: self.switch.clone(), index, up }).await
    }
    async fn oper_status(&self, index: i64) -> Result<PortStatus, DriverError> {
        match self.link.call(Call::SwitchOperStatus { switch: self.switch.clone(), index }, self.location).await? {
            Answer::PortStatus(s) => Ok(s),
            a => Err(mismatch("switch_oper_status", &a)),
        }
    }
    async fn port_states(&self) -> Result<Vec<PortState>, DriverError> {
        match self.link.call(Call::SwitchPortStates { switch: self.switch.clone() }, self.location).await? {
            Answer::PortStates(states) => Ok(states),
            a => Err(mismatch("switch_port_states", &a)),
        }
    }
}

/// A PDU behind a site.
pub struct RemotePdu {
    pub(crate) link: Arc<dyn SiteLink>,
    pub(crate) location: i64,
    pub(crate) pdu: RemoteDevice,
}

#[async_trait]
impl PduDriver for RemotePdu {
    async fn outlets(&self) -> Result<Vec<OutletInfo>, DriverError> {
        match self.link.call(Call::PduOutlets { pdu: self.pdu.clone() }, self.location).await? {
            Answer::Outlets(o) => Ok(o),
            a => Err(mismatch("pdu_outlets", &a)),
        }
    }
    async fn outlet_status(&self, index: i64) -> Result<OutletStatus, DriverError> {
        match self.link.call(Call::PduOutletStatus { pdu: self.pdu.clone(), index }, self.location).await? {
            Answer::OutletStatus(s) => Ok(s),
            a => Err(mismatch("pdu_outlet_status", &a)),
        }
    }
    async fn set_outlet(&self, index: i64, on: bool) -> Result<(), DriverError> {
        done(&self.link, self.location, Call::PduSetOutlet { pdu: self.pdu.clone(), index, on }).await
    }
    /// The site switches the outlet off and on (or uses the PDU's reboot command), so
    /// the pause between the two is the site's, not a second round trip.
    async fn reboot_outlet(&self, index: i64) -> Result<(), DriverError> {
        done(&self.link, self.location, Call::PduRebootOutlet { pdu: self.pdu.clone(), index }).await
    }
}

/// The network boot service of a site.
pub struct RemoteBoot {
    pub(crate) link: Arc<dyn SiteLink>,
    pub(crate) location: i64,
    pub(crate) bmc_kind: Option<BmcType>,
}

#[async_trait]
impl BootDriver for RemoteBoot {
    async fn prepare(&self, req: &BootRequest) -> Result<(), DriverError> {
        done(&self.link, self.location, Call::BootPrepare { bmc_kind: self.bmc_kind, request: req.clone() }).await
    }
    async fn cleanup(&self, task_id: i64, mac: &str) -> Result<(), DriverError> {
        let call = Call::BootCleanup {
            bmc_kind: self.bmc_kind,
            task_id,
            mac: mac.to_owned(),
            location_id: Some(self.location),
        };
        done(&self.link, self.location, call).await
    }
}

/// Performs a call at the site, with the site's own drivers (never a remote one: a
/// site's [`Drivers`] has no router). An agent booted by a boot service without a
/// listener of its own (the fake lab's) reports to `agent_relay`, the site's.
pub async fn perform(drivers: &Drivers, call: Call, agent_relay: Option<&str>) -> Outcome {
    use Call::*;
    match call {
        PowerStatus { bmc } => Ok(Answer::Power(drivers.power(&bmc.access()?)?.status().await?)),
        PowerOn { bmc } => drivers.power(&bmc.access()?)?.on().await.map(|_| Answer::Done),
        PowerOff { bmc } => drivers.power(&bmc.access()?)?.off().await.map(|_| Answer::Done),
        PowerReset { bmc } => drivers.power(&bmc.access()?)?.reset().await.map(|_| Answer::Done),
        SetBootDevice { bmc, device, efi, persistent } => {
            drivers.power(&bmc.access()?)?.set_boot_device(device, efi, persistent).await.map(|_| Answer::Done)
        }
        SwitchPorts { switch } => Ok(Answer::Ports(drivers.switch(switch.protocol, &switch.access())?.ports().await?)),
        SwitchSetAdmin { switch, index, up } => {
            drivers.switch(switch.protocol, &switch.access())?.set_admin(index, up).await.map(|_| Answer::Done)
        }
        SwitchOperStatus { switch, index } => {
            Ok(Answer::PortStatus(drivers.switch(switch.protocol, &switch.access())?.oper_status(index).await?))
        }
        SwitchPortStates { switch } => {
            Ok(Answer::PortStates(drivers.switch(switch.protocol, &switch.access())?.port_states().await?))
        }
        PduOutlets { pdu } => {
            Ok(Answer::Outlets(drivers.pdu(pdu.protocol, &pdu.model, &pdu.access())?.outlets().await?))
        }
        PduOutletStatus { pdu, index } => {
            Ok(Answer::OutletStatus(drivers.pdu(pdu.protocol, &pdu.model, &pdu.access())?.outlet_status(index).await?))
        }
        PduSetOutlet { pdu, index, on } => {
            drivers.pdu(pdu.protocol, &pdu.model, &pdu.access())?.set_outlet(index, on).await.map(|_| Answer::Done)
        }
        PduRebootOutlet { pdu, index } => {
            drivers.pdu(pdu.protocol, &pdu.model, &pdu.access())?.reboot_outlet(index).await.map(|_| Answer::Done)
        }
        BootPrepare { bmc_kind, mut request } => {
            // The agent reports to this site's boot listener, which relays to the central.
            let boot = drivers.boot(bmc_kind, request.location_id)?;
            if let Some(callback) = boot.agent_callback(request.location_id).or(agent_relay.map(str::to_owned)) {
                request.callback = callback;
            }
            boot.prepare(&request).await.map(|_| Answer::Done)
        }
        BootCleanup { bmc_kind, task_id, mac, location_id } => {
            drivers.boot(bmc_kind, location_id)?.cleanup(task_id, &mac).await.map(|_| Answer::Done)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_another_major_are_refused_by_name() {
        assert!(check_protocol("1.0", "the site").is_ok());
        assert!(check_protocol("1.7", "the site").is_ok());
        let e = check_protocol("2.0", "the site").unwrap_err();
        assert!(e.contains("\"2.0\"") && e.contains("1.0"), "{e}");
        assert!(check_protocol("", "the site").is_err());
    }

    #[test]
    fn calls_and_answers_travel_as_json() {
        let bmc = RemoteBmc {
            kind: BmcType::IpmiLanplus,
            address: "10.0.0.5:623".into(),
            user: "admin".into(),
            password: "pw".into(),
            mac: None,
            tls_fingerprint: Some(dcim_tls::fingerprint(&[7; 32])),
        };
        let call = Call::SetBootDevice { bmc: bmc.clone(), device: BootDevice::Pxe, efi: true, persistent: false };
        let text = serde_json::to_string(&call).unwrap();
        assert!(text.contains("\"op\":\"set_boot_device\""), "{text}");
        let back: Call = serde_json::from_str(&text).unwrap();
        let Call::SetBootDevice { bmc: b, device, efi, persistent } = back else { panic!("{text}") };
        assert_eq!((b, device, efi, persistent), (bmc.clone(), BootDevice::Pxe, true, false));
        assert_eq!(bmc.access().unwrap().tls_fingerprint, Some([7; 32]));
        let outcome: Outcome = Err(DriverError::Unreachable("10.0.0.5:623".into()));
        let text = serde_json::to_string(&outcome).unwrap();
        assert_eq!(serde_json::from_str::<Outcome>(&text).unwrap(), outcome);
        let state = PortState { index: 3, admin_status: PortStatus::Up, oper_status: PortStatus::Down };
        let outcome: Outcome = Ok(Answer::PortStates(vec![state]));
        let text = serde_json::to_string(&outcome).unwrap();
        assert_eq!(serde_json::from_str::<Outcome>(&text).unwrap(), outcome);
    }
}
