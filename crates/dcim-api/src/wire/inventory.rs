//! Shapes of dcim's inventory API (locations, racks, switches, PDUs, ports, OS
//! templates): DCImanager's public docs do not show how equipment is entered, so
//! these follow its style. SNMP secrets are accepted and never returned.

use dcim_store::inventory::{DeviceRow, LocationRow, OsTemplateRow, PortRow, RackRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::extract::id_like;

#[derive(Debug, Serialize, ToSchema)]
pub struct Location {
    pub id: i64,
    pub name: String,
    pub geolocation: String,
    pub userspace: Option<i64>,
}

impl From<LocationRow> for Location {
    fn from(r: LocationRow) -> Self {
        Location { id: r.id, name: r.name, geolocation: r.geolocation, userspace: r.userspace }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LocationInput {
    pub name: Option<String>,
    pub geolocation: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rack {
    pub id: i64,
    pub name: String,
    pub location_id: i64,
    pub size: i64,
    /// Servers placed in the rack; sortable (`orderby=device_count desc`).
    pub device_count: i64,
}

impl From<RackRow> for Rack {
    fn from(r: RackRow) -> Self {
        Rack { id: r.id, name: r.name, location_id: r.location_id, size: r.size, device_count: r.device_count }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewRack {
    pub name: String,
    #[serde(deserialize_with = "id_like")]
    #[schema(value_type = i64)]
    pub location_id: i64,
    pub size: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RackEdit {
    pub name: Option<String>,
    pub size: Option<i64>,
}

/// A switch or a PDU (`model` only for PDUs).
#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    pub id: i64,
    pub name: String,
    pub location_id: i64,
    pub ip: String,
    #[schema(value_type = String)]
    pub protocol: dcim_core::DeviceProtocol,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub port_count: i64,
}

impl Device {
    pub fn switch(r: DeviceRow) -> Self {
        Device {
            id: r.id,
            name: r.name,
            location_id: r.location_id,
            ip: r.ip,
            protocol: r.protocol,
            model: None,
            port_count: r.port_count,
        }
    }

    pub fn pdu(r: DeviceRow) -> Self {
        let model = Some(r.model.clone());
        Device { model, ..Device::switch(r) }
    }
}

/// SNMP access: `{"community"}` for v2c, or the v3 user and keys. Write-only.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnmpInput {
    pub community: Option<String>,
    pub user: Option<String>,
    pub auth_protocol: Option<String>,
    pub auth_password: Option<String>,
    pub priv_protocol: Option<String>,
    pub priv_password: Option<String>,
    pub context: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewDevice {
    pub name: String,
    #[serde(deserialize_with = "id_like")]
    #[schema(value_type = i64)]
    pub location_id: i64,
    /// `host` or `host:port`.
    pub ip: String,
    /// `snmp_v2c`, `snmp_v3` or `fake`.
    pub protocol: String,
    #[serde(default)]
    pub snmp: Option<SnmpInput>,
    /// PDUs only: the MIB family, e.g. `apc_rpdu`.
    pub model: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeviceEdit {
    pub name: Option<String>,
    pub ip: Option<String>,
    pub snmp: Option<SnmpInput>,
}

/// A switch port's edit: its administrative state, set on the device.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SwitchPortEdit {
    pub admin_status: PortAdmin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PortAdmin {
    Up,
    Down,
}

impl PortAdmin {
    pub fn as_str(self) -> &'static str {
        match self {
            PortAdmin::Up => "up",
            PortAdmin::Down => "down",
        }
    }
}

/// `POST /pdu/{id}/port/{port_id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PduPortEdit {
    pub power_status: OutletPower,
}

/// What to do with an outlet: switch it on or off, or off and on again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutletPower {
    On,
    Off,
    Reboot,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PortServer {
    pub id: i64,
    pub name: String,
}

/// A switch port.
#[derive(Debug, Serialize, ToSchema)]
pub struct SwitchPort {
    pub id: i64,
    pub switch: i64,
    pub index: i64,
    pub name: String,
    pub description: String,
    /// The description configured on the port (SNMP ifAlias).
    pub alias: String,
    #[schema(value_type = String)]
    pub admin_status: dcim_core::PortStatus,
    #[schema(value_type = String)]
    pub oper_status: dcim_core::PortStatus,
    /// Mbit/s.
    pub speed: Option<i64>,
    pub server: Option<PortServer>,
}

/// A PDU outlet.
#[derive(Debug, Serialize, ToSchema)]
pub struct PduPort {
    pub id: i64,
    pub pdu: i64,
    pub index: i64,
    pub name: String,
    #[schema(value_type = String)]
    pub power_status: dcim_core::PortStatus,
    pub server: Option<PortServer>,
}

fn port_server(r: &PortRow) -> Option<PortServer> {
    match (r.server_id, &r.server_name) {
        (Some(id), Some(name)) => Some(PortServer { id, name: name.clone() }),
        _ => None,
    }
}

impl From<PortRow> for SwitchPort {
    fn from(r: PortRow) -> Self {
        SwitchPort {
            server: port_server(&r),
            id: r.id,
            switch: r.device_id,
            index: r.idx,
            name: r.name,
            description: r.description,
            alias: r.alias,
            admin_status: r.admin_status,
            oper_status: r.oper_status,
            speed: r.speed,
        }
    }
}

impl From<PortRow> for PduPort {
    fn from(r: PortRow) -> Self {
        PduPort {
            server: port_server(&r),
            id: r.id,
            pdu: r.device_id,
            index: r.idx,
            name: r.name,
            power_status: r.oper_status,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OsTemplate {
    pub id: i64,
    pub name: String,
    /// `os`, `diag` or `rescue`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: dcim_core::TemplateType,
    pub tags: Vec<String>,
    pub efi: bool,
    /// The raw disk image an `os` template writes (http or https); null without one.
    pub image_url: Option<String>,
    /// The image's SHA-256, 64 hex digits, checked by the agent before it reports the install.
    pub image_sha256: Option<String>,
    /// Instead of an image: the installer booted, `kickstart`, `preseed` or `autoinstall`.
    pub installer: Option<String>,
    /// The installer's kernel (http or https), e.g. a distribution's netboot `vmlinuz`.
    pub installer_kernel: Option<String>,
    /// The installer's initrd (http or https).
    pub installer_initrd: Option<String>,
    /// The answer file with `{{placeholders}}`; null: dcim's default for the installer.
    pub installer_template: Option<String>,
}

impl From<OsTemplateRow> for OsTemplate {
    fn from(r: OsTemplateRow) -> Self {
        OsTemplate {
            tags: serde_json::from_str(&r.tags).unwrap_or_default(),
            id: r.id,
            name: r.name,
            kind: r.kind,
            efi: r.efi != 0,
            image_url: r.image_url,
            image_sha256: r.image_sha256,
            installer: r.installer,
            installer_kernel: r.installer_kernel,
            installer_initrd: r.installer_initrd,
            installer_template: r.installer_template,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewOsTemplate {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "yes")]
    pub efi: bool,
    /// Given together with `image_sha256`, or neither.
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub image_sha256: Option<String>,
    /// `kickstart`, `preseed` or `autoinstall`; not with an image. Needs the kernel and initrd.
    #[serde(default)]
    pub installer: Option<String>,
    #[serde(default)]
    pub installer_kernel: Option<String>,
    #[serde(default)]
    pub installer_initrd: Option<String>,
    /// Placeholders: `{{hostname}}`, `{{password_hash}}`, `{{ssh_keys}}`, `{{raid}}`, `{{raid_level}}`,
    /// `{{disks}}`, `{{callback}}`, `{{task}}`, `{{secret}}`.
    #[serde(default)]
    pub installer_template: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OsTemplateEdit {
    pub name: Option<String>,
    pub tags: Option<Vec<String>>,
    pub efi: Option<bool>,
    /// Absent: unchanged; null (with `image_sha256` null): the template loses its image.
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<String>)]
    pub image_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<String>)]
    pub image_sha256: Option<Option<String>>,
    /// Absent: unchanged; null (with the kernel and initrd null): the template loses its installer.
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<String>)]
    pub installer: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<String>)]
    pub installer_kernel: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<String>)]
    pub installer_initrd: Option<Option<String>>,
    /// Absent: unchanged; null: back to the default answer file.
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<String>)]
    pub installer_template: Option<Option<String>>,
}

/// Hardware entered by hand: the `hardware_info` object (schema in `dcim_core::configuration`).
pub type HardwareInput = Value;
