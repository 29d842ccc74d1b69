//! `/dci/v3/server` shapes: the server object of the seed with every field of its
//! list example, and the bodies that create and edit servers.

use dcim_core::{BmcType, IpStatus, OutletStatus, PortStatus, PowerStatus, ServerState, TaskStatus};
use dcim_store::servers::{ConfigurationCount, PduConnectionRow, ServerDetail, SwitchConnectionRow};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::extract::{id_like, nullable};

/// A server as the seed shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Server {
    /// The current or last operation; `null` until the server has had one.
    pub operation: Option<Operation>,
    pub domain: String,
    pub id: i64,
    pub os_template: Option<OsTemplateRef>,
    /// Passed through as stored (it was validated on the way in).
    #[schema(value_type = Object)]
    pub hardware_info: Box<RawValue>,
    #[schema(value_type = Object)]
    pub perform_info: Value,
    pub configuration: Option<String>,
    pub settings: Settings,
    /// `ok`, `suspending`, `suspended`, `suspend_error`, `resuming`, `resume_error`.
    #[schema(value_type = String)]
    pub state: ServerState,
    pub state_info: String,
    pub ip: Vec<ServerIp>,
    pub switch_connection: Vec<SwitchConnection>,
    pub pdu_connection: Option<PduConnection>,
    pub ipmi: Option<Ipmi>,
    pub intel_amt: Option<IntelAmt>,
    pub location: Location,
    pub location_id: i64,
    pub mac: Option<String>,
    pub main_ipv4: Option<i64>,
    pub main_ipv6: Option<i64>,
    pub name: String,
    pub platform: Option<Platform>,
    pub rack: Option<Rack>,
    pub unit: Option<i64>,
    pub chassis: Option<Chassis>,
    pub slot: Option<i64>,
    pub owner: Option<Owner>,
    pub owner_email: Option<String>,
    pub diag_error: Vec<DiagError>,
    pub is_new: bool,
    /// `on`, `off` or `unknown`, as the power driver last reported.
    #[schema(value_type = String)]
    pub power_status: PowerStatus,
    pub barcode: String,
    pub serial_number: String,
    /// The server's own id for external links (a UUID).
    pub uuid: Option<String>,
    pub model: String,
    /// The operators' note.
    pub note: String,
    /// The customer's own note (the owner may edit it).
    pub user_note: String,
    /// `in_rack`, or `in_warehouse` for a server of its location without a rack.
    pub warehouse_status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Operation {
    pub id: i64,
    #[schema(value_type = String)]
    pub status: TaskStatus,
    #[schema(value_type = Object)]
    pub status_info: Value,
    #[schema(value_type = Vec<Object>)]
    pub progress_info: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OsTemplateRef {
    pub id: i64,
    pub name: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Settings {
    pub efi: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServerIp {
    pub domain: String,
    pub family: String,
    pub gateway: String,
    pub id: i64,
    pub name: String,
    pub network: String,
    #[schema(value_type = String)]
    pub status: IpStatus,
    #[schema(value_type = Object)]
    pub status_info: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SwitchConnection {
    /// The switch port's id.
    pub id: i64,
    pub switch: i64,
    pub switch_name: String,
    pub connection_id: i64,
    pub description: String,
    #[schema(value_type = String)]
    pub admin_status: PortStatus,
    #[schema(value_type = String)]
    pub oper_status: PortStatus,
    pub do_not_collect_traffic: bool,
    pub is_ipmi_connection: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PduConnection {
    pub port_id: i64,
    pub port_identity: String,
    pub pdu_id: i64,
    pub pdu_name: String,
    pub connection_id: i64,
    #[schema(value_type = String)]
    pub power_status: OutletStatus,
}

/// The BMC. Its `id` is the server's: dcim keeps one BMC per server.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ipmi {
    pub address: String,
    pub id: i64,
    /// The power the BMC last reported: `on`, `off` or `unknown`.
    #[schema(value_type = String)]
    pub status: PowerStatus,
    #[schema(value_type = Object)]
    pub status_info: Value,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: BmcType,
    pub web_url: Option<String>,
    /// A Redfish BMC's pinned certificate: its SHA-256, `ab:cd:...`.
    pub tls_fingerprint: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntelAmt {
    pub address: String,
    pub id: i64,
    pub status: String,
    #[schema(value_type = Object)]
    pub status_info: Value,
    pub protocol: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ServerLocation)]
pub struct Location {
    pub geolocation: String,
    pub id: i64,
    pub name: String,
    pub userspace: Option<i64>,
}

/// The server's platform: its name and height in rack units. dcim keeps one platform
/// per server, so its `id` is the server's (as `ipmi.id` is); `name` is as set, else
/// `"{size}U server"`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Platform {
    pub id: i64,
    pub name: String,
    pub size: i64,
    /// Always `server`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A platform as entered: either field may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PlatformInput {
    pub name: Option<String>,
    /// Height in rack units, 1 to 64.
    pub size: Option<i64>,
}

/// The rack a server is in (the inventory's `Rack` has more).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ServerRack)]
pub struct Rack {
    pub id: i64,
    pub name: String,
    pub size: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Chassis {
    pub id: i64,
    pub name: String,
    pub size: i64,
    pub server_slot_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Owner {
    pub id: i64,
    pub email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiagError {
    #[serde(rename = "type")]
    pub kind: String,
    pub info: String,
}

impl From<SwitchConnectionRow> for SwitchConnection {
    fn from(c: SwitchConnectionRow) -> Self {
        SwitchConnection {
            id: c.port_id,
            switch: c.switch_id,
            switch_name: c.switch_name,
            connection_id: c.connection_id,
            description: if c.description.is_empty() { c.port_name } else { c.description },
            admin_status: c.admin_status,
            oper_status: c.oper_status,
            do_not_collect_traffic: c.do_not_collect_traffic,
            is_ipmi_connection: c.is_ipmi_connection,
        }
    }
}

impl From<PduConnectionRow> for PduConnection {
    fn from(c: PduConnectionRow) -> Self {
        PduConnection {
            port_id: c.port_id,
            port_identity: c.port_identity,
            pdu_id: c.pdu_id,
            pdu_name: c.pdu_name,
            connection_id: c.connection_id,
            power_status: c.power_status,
        }
    }
}

impl From<ServerDetail> for Server {
    fn from(d: ServerDetail) -> Self {
        let s = d.server;
        let labels = s.details;
        let os_template = match (s.os_template_id, s.os_template_name) {
            (Some(id), Some(name)) => Some(OsTemplateRef {
                id,
                name,
                tags: s.os_template_tags.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default(),
            }),
            _ => None,
        };
        let rack = match (s.rack_id, s.rack_name, s.rack_size) {
            (Some(id), Some(name), Some(size)) => Some(Rack { id, name, size }),
            _ => None,
        };
        let ipmi = match (s.ipmi_address, s.ipmi_type) {
            (Some(address), Some(kind)) => Some(Ipmi {
                address,
                id: s.id.get(),
                status: s.ipmi_status,
                status_info: serde_json::from_str(&s.ipmi_status_info).unwrap_or_else(|_| json!({})),
                kind,
                web_url: s.ipmi_web_url,
                tls_fingerprint: s.ipmi_tls_fingerprint.map(|f| {
                    f.as_bytes()
                        .chunks(2)
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect::<Vec<_>>()
                        .join(":")
                }),
            }),
            _ => None,
        };
        let owner = match (s.owner_id, &s.owner_email) {
            (Some(id), Some(email)) => Some(Owner { id: id.get(), email: email.clone() }),
            _ => None,
        };
        let operation = match (s.op_id, s.op_status) {
            (Some(id), Some(status)) => Some(Operation {
                id,
                status,
                status_info: s
                    .op_status_info
                    .as_deref()
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or_else(|| json!({})),
                progress_info: crate::wire::task::progress_info(s.op_progress_info.as_deref().unwrap_or("[]")),
            }),
            _ => None,
        };
        Server {
            operation,
            domain: s.domain,
            id: s.id.get(),
            os_template,
            hardware_info: raw_json(s.hardware_info),
            perform_info: json!({}),
            configuration: s.configuration,
            settings: Settings { efi: s.efi },
            state: s.state,
            state_info: s.state_info,
            ip: d
                .ips
                .into_iter()
                .map(|i| ServerIp {
                    domain: i.domain,
                    family: dcim_core::ip::family_name(i.family).into(),
                    gateway: i.gateway,
                    id: i.id,
                    name: i.name,
                    network: i.network,
                    status: i.status,
                    status_info: serde_json::from_str(&i.status_info).unwrap_or_else(|_| json!({})),
                })
                .collect(),
            switch_connection: d.switch_connections.into_iter().map(Into::into).collect(),
            pdu_connection: d.pdu_connections.into_iter().next().map(Into::into),
            ipmi,
            intel_amt: None,
            location: Location {
                geolocation: s.location_geolocation,
                id: s.location_id,
                name: s.location_name,
                userspace: s.location_userspace,
            },
            location_id: s.location_id,
            mac: s.mac,
            main_ipv4: s.main_ipv4,
            main_ipv6: s.main_ipv6,
            platform: Some(Platform {
                id: s.id.get(),
                name: if labels.platform_name.is_empty() {
                    format!("{}U server", labels.size)
                } else {
                    labels.platform_name
                },
                size: labels.size,
                kind: "server".into(),
            }),
            warehouse_status: if rack.is_some() { "in_rack" } else { "in_warehouse" }.into(),
            name: s.name,
            rack,
            unit: s.unit,
            chassis: None,
            slot: None,
            owner,
            owner_email: s.owner_email,
            diag_error: s.diag_error.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default(),
            is_new: s.is_new,
            power_status: s.power_status,
            barcode: labels.barcode,
            serial_number: labels.serial_number,
            uuid: s.uuid,
            model: labels.model,
            note: labels.note,
            user_note: labels.user_note,
        }
    }
}

/// One line of `GET /server/configuration`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Configuration {
    pub configuration: String,
    pub free_server_count: i64,
}

impl From<ConfigurationCount> for Configuration {
    fn from(c: ConfigurationCount) -> Self {
        Configuration { configuration: c.configuration, free_server_count: c.free_server_count }
    }
}

/// `POST /server/{id}/owner`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OwnerRequest {
    #[serde(deserialize_with = "id_like")]
    #[schema(value_type = i64)]
    pub owner: i64,
}

/// BMC access data. `password` is write-only.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IpmiInput {
    /// `host` or `host:port`.
    pub address: String,
    /// `IPMI v1.5/v2`, `IPMI v2(lanplus)`, `redfish` or `fake`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub password: String,
    pub web_url: Option<String>,
    /// A Redfish BMC's certificate to trust whoever signed it (IPMI BMCs have none): its SHA-256, 64
    /// hexadecimal digits, with or without colons (`openssl x509 -fingerprint -sha256`);
    /// empty or null for none (the trusted CAs then decide, as `bmc_tls_verify` says).
    pub tls_fingerprint: Option<String>,
}

/// `POST /server`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewServer {
    pub name: String,
    #[serde(deserialize_with = "id_like")]
    #[schema(value_type = i64)]
    pub location_id: i64,
    pub rack_id: Option<i64>,
    pub unit: Option<i64>,
    pub mac: Option<String>,
    #[serde(default)]
    pub domain: String,
    pub ipmi: Option<IpmiInput>,
    #[serde(default)]
    pub barcode: String,
    #[serde(default)]
    pub serial_number: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub user_note: String,
    pub platform: Option<PlatformInput>,
}

/// `POST /server/{id}`: only the fields to change; `null` clears a nullable one.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ServerEdit {
    pub name: Option<String>,
    pub domain: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub mac: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub rack_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub unit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<IpmiInput>)]
    pub ipmi: Option<Option<IpmiInput>>,
    /// A custom configuration that overrides the generated one; `null` goes back to it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub configuration: Option<Option<String>>,
    pub is_new: Option<bool>,
    pub barcode: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub note: Option<String>,
    /// The one field the server's owner (a `@user`) may edit.
    pub user_note: Option<String>,
    pub platform: Option<PlatformInput>,
    /// The server's main IPv4 address: the id of one of the server's own IPv4 addresses
    /// in use (`status` ok); `null` for none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub main_ipv4: Option<Option<i64>>,
    /// The same for IPv6.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub main_ipv6: Option<Option<i64>>,
}

impl ServerEdit {
    /// Whether the body changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.domain.is_none()
            && self.mac.is_none()
            && self.rack_id.is_none()
            && self.unit.is_none()
            && self.ipmi.is_none()
            && self.configuration.is_none()
            && self.is_new.is_none()
            && self.barcode.is_none()
            && self.serial_number.is_none()
            && self.model.is_none()
            && self.note.is_none()
            && self.user_note.is_none()
            && self.platform.is_none()
            && self.main_ipv4.is_none()
            && self.main_ipv6.is_none()
    }
}

/// `POST /server/{id}/switch_connection`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SwitchConnectionRequest {
    #[serde(deserialize_with = "id_like")]
    #[schema(value_type = i64)]
    pub port: i64,
    #[serde(default)]
    pub is_ipmi_connection: bool,
}

/// `POST /server/{id}/pdu_connection`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PduConnectionRequest {
    #[serde(deserialize_with = "id_like")]
    #[schema(value_type = i64)]
    pub port: i64,
}

/// A stored JSON object handed on without being parsed into a tree.
fn raw_json(text: String) -> Box<RawValue> {
    RawValue::from_string(text).unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).expect("valid JSON"))
}
