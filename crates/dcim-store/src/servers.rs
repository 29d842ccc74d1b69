//! Servers: placement, BMC access, hardware, owner, and the connections to switch
//! ports and PDU outlets. The BMC password is write-only: [`Store::bmc_credentials`]
//! is the one reader, for power drivers.

use dcim_core::query::ListQuery;
use dcim_core::{BmcType, IpStatus, OutletStatus, PortStatus, PowerStatus, ServerState, TaskStatus};
use futures_util::TryStreamExt;
use sqlx::{AssertSqlSafe, FromRow};
use tokio::sync::mpsc;

use crate::ids::{Flag, ServerId, UserId};
use crate::list::{Bind, Facet, Facets, Field, FieldType, ListSpec, Page, Patch, Scope, bind_query_as};
use crate::native::NativeRow;
use crate::{DbVersion, Result, Store, StoreError, now};

/// A server with the names of what it refers to, as one joined row.
#[derive(Debug, Clone, FromRow)]
pub struct ServerRow {
    pub id: ServerId,
    pub name: String,
    pub domain: String,
    pub mac: Option<String>,
    pub location_id: i64,
    pub location_name: String,
    pub location_geolocation: String,
    pub location_userspace: Option<i64>,
    pub rack_id: Option<i64>,
    pub rack_name: Option<String>,
    pub rack_size: Option<i64>,
    pub unit: Option<i64>,
    pub ipmi_address: Option<String>,
    pub ipmi_type: Option<BmcType>,
    pub ipmi_web_url: Option<String>,
    pub ipmi_tls_fingerprint: Option<String>,
    /// The power the BMC last reported (`unknown` when it did not answer).
    pub ipmi_status: PowerStatus,
    /// Why the BMC's state is unknown, as JSON (`{}` when it answered).
    pub ipmi_status_info: String,
    pub power_status: PowerStatus,
    pub state: ServerState,
    pub state_info: String,
    pub hardware_info: String,
    pub configuration: Option<String>,
    pub generated_configuration: Option<String>,
    pub custom_configuration: Option<String>,
    #[sqlx(try_from = "Flag")]
    pub is_new: bool,
    pub diag_error: Option<String>,
    pub owner_id: Option<UserId>,
    pub owner_email: Option<String>,
    pub os_template_id: Option<i64>,
    pub os_template_name: Option<String>,
    pub os_template_tags: Option<String>,
    #[sqlx(try_from = "Flag")]
    pub efi: bool,
    /// The current or last operation (task) of the server.
    pub op_id: Option<i64>,
    pub op_status: Option<TaskStatus>,
    pub op_status_info: Option<String>,
    pub op_progress_info: Option<String>,
    /// The switch connections as a JSON array of arrays: connection id, port id,
    /// switch id, port name, port description, admin_status, oper_status,
    /// is_ipmi_connection, do_not_collect_traffic, ifIndex.
    pub switch_connections: String,
    /// The PDU connections as a JSON array of arrays: connection id, port id, port
    /// name, pdu id, pdu name, power_status, outlet number.
    pub pdu_connections: String,
    /// The addresses as a JSON array of arrays: id, address, family, domain, status,
    /// status_info, gateway, network.
    pub ips: String,
    pub main_ipv4: Option<i64>,
    pub main_ipv6: Option<i64>,
    #[sqlx(flatten)]
    pub details: ServerDetails,
    pub uuid: Option<String>,
}

/// Builds [`ServerRow`] on the native SQLite path from the columns of the same select;
/// each field is named once, so the column list and the struct cannot drift apart.
macro_rules! native_server_row {
    ($($field:ident),+ ; $($detail:ident),+) => {
        impl NativeRow for ServerRow {
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),+, $(stringify!($detail)),+];

            fn from_native(r: &rusqlite::Row<'_>, at: &[usize]) -> rusqlite::Result<Self> {
                let mut at = at.iter().copied();
                // Fields are read in the order written, which is COLUMNS' order.
                let mut next = move || at.next().unwrap_or(usize::MAX);
                Ok(ServerRow {
                    $($field: r.get(next())?,)+
                    details: ServerDetails { $($detail: r.get(next())?,)+ },
                })
            }
        }
    };
}

native_server_row!(
    id, name, domain, mac, location_id, location_name, location_geolocation, location_userspace, rack_id,
    rack_name, rack_size, unit, ipmi_address, ipmi_type, ipmi_web_url, ipmi_tls_fingerprint, ipmi_status,
    ipmi_status_info, power_status, state, state_info, hardware_info, configuration, generated_configuration,
    custom_configuration, is_new, diag_error, owner_id, owner_email, os_template_id, os_template_name,
    os_template_tags, efi, op_id, op_status, op_status_info, op_progress_info, switch_connections,
    pdu_connections, ips, main_ipv4, main_ipv6, uuid;
    barcode, serial_number, model, note, user_note, platform_name, size
);

/// A server's link to a switch port.
#[derive(Debug, Clone)]
pub struct SwitchConnectionRow {
    pub connection_id: i64,
    pub server_id: ServerId,
    pub port_id: i64,
    /// The port's index on the switch (SNMP ifIndex).
    pub port_index: i64,
    pub switch_id: i64,
    pub switch_name: String,
    pub port_name: String,
    pub description: String,
    pub admin_status: PortStatus,
    pub oper_status: PortStatus,
    pub is_ipmi_connection: bool,
    pub do_not_collect_traffic: bool,
}

/// A server's link to a PDU outlet.
#[derive(Debug, Clone)]
pub struct PduConnectionRow {
    pub connection_id: i64,
    pub server_id: ServerId,
    pub port_id: i64,
    /// The outlet's number on the PDU.
    pub port_index: i64,
    pub port_identity: String,
    pub pdu_id: i64,
    pub pdu_name: String,
    pub power_status: OutletStatus,
}

/// A server with its connections and addresses.
#[derive(Debug, Clone)]
pub struct ServerDetail {
    pub server: ServerRow,
    pub switch_connections: Vec<SwitchConnectionRow>,
    pub pdu_connections: Vec<PduConnectionRow>,
    pub ips: Vec<ServerIpRow>,
}

/// One of a server's addresses.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ServerIpRow {
    pub id: i64,
    pub name: String,
    pub family: i64,
    pub domain: String,
    pub status: IpStatus,
    pub status_info: String,
    pub gateway: String,
    pub network: String,
}

type SwitchConnTuple = (i64, i64, i64, String, String, PortStatus, PortStatus, i64, i64, i64, String);
type PduConnTuple = (i64, i64, String, i64, String, OutletStatus, i64);

impl ServerDetail {
    fn from_row(mut server: ServerRow) -> Result<Self> {
        let bad =
            |e: serde_json::Error| StoreError::Config(format!("server {}: unreadable connections: {e}", server.id));
        let sw: Vec<SwitchConnTuple> = serde_json::from_str(&server.switch_connections).map_err(bad)?;
        let pdu: Vec<PduConnTuple> = serde_json::from_str(&server.pdu_connections).map_err(bad)?;
        let ips: Vec<ServerIpRow> = serde_json::from_str(&server.ips).map_err(bad)?;
        drop(std::mem::take(&mut server.ips));
        let server_id = server.id;
        // Parsed: free the JSON text now rather than with the row.
        drop(std::mem::take(&mut server.switch_connections));
        drop(std::mem::take(&mut server.pdu_connections));
        Ok(ServerDetail {
            ips,
            switch_connections: sw
                .into_iter()
                .map(|c| SwitchConnectionRow {
                    connection_id: c.0,
                    server_id,
                    port_id: c.1,
                    switch_id: c.2,
                    port_name: c.3,
                    description: c.4,
                    admin_status: c.5,
                    oper_status: c.6,
                    is_ipmi_connection: c.7 != 0,
                    do_not_collect_traffic: c.8 != 0,
                    port_index: c.9,
                    switch_name: c.10,
                })
                .collect(),
            pdu_connections: pdu
                .into_iter()
                .map(|c| PduConnectionRow {
                    connection_id: c.0,
                    server_id,
                    port_id: c.1,
                    port_identity: c.2,
                    pdu_id: c.3,
                    pdu_name: c.4,
                    power_status: c.5,
                    port_index: c.6,
                })
                .collect(),
            server,
        })
    }
}

/// BMC access data as entered.
#[derive(Debug, Clone)]
pub struct BmcAccess {
    pub address: String,
    pub kind: BmcType,
    pub user: String,
    pub password: String,
    pub web_url: Option<String>,
    /// A Redfish BMC's pinned certificate: SHA-256, 64 lower-case hexadecimal digits.
    pub tls_fingerprint: Option<String>,
}

/// A new server, validated by the caller.
#[derive(Debug, Clone)]
pub struct NewServer {
    pub name: String,
    pub location_id: i64,
    pub rack_id: Option<i64>,
    pub unit: Option<i64>,
    pub mac: Option<String>,
    pub domain: String,
    pub bmc: Option<BmcAccess>,
    pub details: ServerDetails,
}

/// What describes a server beyond its placement: labels, notes, and its platform
/// with the height in rack units.
#[derive(Debug, Clone, FromRow)]
pub struct ServerDetails {
    pub barcode: String,
    pub serial_number: String,
    pub model: String,
    pub note: String,
    pub user_note: String,
    pub platform_name: String,
    pub size: i64,
}

impl Default for ServerDetails {
    fn default() -> Self {
        ServerDetails {
            barcode: String::new(),
            serial_number: String::new(),
            model: String::new(),
            note: String::new(),
            user_note: String::new(),
            platform_name: String::new(),
            size: 1,
        }
    }
}

/// Changes to a server; `None` leaves a field, `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct ServerPatch {
    pub name: Option<String>,
    pub domain: Option<String>,
    pub mac: Option<Option<String>>,
    pub rack_id: Option<Option<i64>>,
    pub unit: Option<Option<i64>>,
    pub bmc: Option<Option<BmcAccess>>,
    pub custom_configuration: Option<Option<String>>,
    pub is_new: Option<bool>,
    pub barcode: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub note: Option<String>,
    pub user_note: Option<String>,
    pub platform_name: Option<String>,
    pub size: Option<i64>,
    /// The main address of a family: one of the server's own addresses in use.
    pub main_ipv4: Option<Option<i64>>,
    pub main_ipv6: Option<Option<i64>>,
}

/// What the billing counts: free servers per configuration.
#[derive(Debug, Clone, FromRow)]
pub struct ConfigurationCount {
    pub configuration: String,
    pub free_server_count: i64,
}

/// The list's joins, for its count. Every server has its location (`location_id NOT
/// NULL REFERENCES locations`, enforced on both backends), so a left join finds the
/// same rows as the select's inner one, and the count leaves it out when the filter
/// does not name the location (`list::count_from`).
const SERVER_FROM: &str = "servers s LEFT JOIN locations l ON l.id = s.location_id \
     LEFT JOIN racks r ON r.id = s.rack_id LEFT JOIN users o ON o.id = s.owner_id \
     LEFT JOIN os_templates t ON t.id = s.os_template_id LEFT JOIN tasks lt ON lt.id = s.last_task_id";

/// The server list query with a dialect's JSON aggregation of the connections: one
/// statement answers a page of any size, connections included.
macro_rules! server_select {
    ($switch_agg:literal, $pdu_agg:literal, $ip_agg:literal) => {
        concat!(
            "SELECT s.id, s.name, s.domain, s.mac, s.location_id, l.name AS location_name, \
             l.geolocation AS location_geolocation, l.userspace AS location_userspace, s.rack_id, \
             r.name AS rack_name, r.size AS rack_size, s.unit, s.ipmi_address, s.ipmi_type, s.ipmi_web_url, \
             s.ipmi_tls_fingerprint, s.ipmi_status, s.ipmi_status_info, s.power_status, s.state, s.state_info, s.hardware_info, s.configuration, \
             s.generated_configuration, s.custom_configuration, s.is_new, s.diag_error, s.owner_id, \
             o.email AS owner_email, s.os_template_id, t.name AS os_template_name, t.tags AS os_template_tags, s.efi, \
             lt.id AS op_id, lt.status AS op_status, lt.status_info AS op_status_info, \
             lt.progress_info AS op_progress_info, ",
            $switch_agg,
            " AS switch_connections, ",
            $pdu_agg,
            " AS pdu_connections, ",
            $ip_agg,
            " AS ips, s.main_ipv4, s.main_ipv6, s.barcode, s.serial_number, s.model, s.note, s.user_note, \
             s.platform_name, s.size, s.uuid FROM servers s JOIN locations l ON l.id = s.location_id \
             LEFT JOIN racks r ON r.id = s.rack_id LEFT JOIN users o ON o.id = s.owner_id \
             LEFT JOIN os_templates t ON t.id = s.os_template_id LEFT JOIN tasks lt ON lt.id = s.last_task_id"
        )
    };
}

const SERVER_FIELDS: &[Field] = &[
    Field::new("id", "s.id", FieldType::Int),
    Field::new("name", "s.name", FieldType::Text),
    Field::new("domain", "s.domain", FieldType::Text),
    Field::new("mac", "s.mac", FieldType::Text),
    Field::new("state", "s.state", FieldType::Text),
    Field::new("state_info", "s.state_info", FieldType::Text),
    Field::new("power_status", "s.power_status", FieldType::Text),
    Field::new("configuration", "s.configuration", FieldType::Text),
    Field::new("is_new", "s.is_new", FieldType::Bool),
    Field::new("diag_error", "s.diag_error", FieldType::Text),
    // The hardware report as JSON text: `CP` finds a disk or board serial in it.
    Field::new("hardware_info", "s.hardware_info", FieldType::Text),
    Field::new("owner", "s.owner_id", FieldType::Int),
    Field::new("owner.id", "s.owner_id", FieldType::Int),
    // users.email is NOT NULL and owner_id a foreign key: the owner's email is null
    // exactly when the server has no owner.
    Field::new("owner_email", "o.email", FieldType::Text).null_as("s.owner_id"),
    Field::new("owner.email", "o.email", FieldType::Text).null_as("s.owner_id"),
    Field::new("location_id", "s.location_id", FieldType::Int),
    Field::new("location.id", "s.location_id", FieldType::Int),
    Field::new("location.name", "l.name", FieldType::Text),
    Field::new("rack.id", "s.rack_id", FieldType::Int),
    Field::new("rack.name", "r.name", FieldType::Text).null_as("s.rack_id"),
    Field::new("unit", "s.unit", FieldType::Int),
    Field::new("os_template.id", "s.os_template_id", FieldType::Int),
    Field::new("os_template.name", "t.name", FieldType::Text),
    Field::new("ipmi.address", "s.ipmi_address", FieldType::Text),
    Field::new("ipmi.type", "s.ipmi_type", FieldType::Text),
    Field::new("ipmi.status", "s.ipmi_status", FieldType::Text),
    Field::new("operation.id", "lt.id", FieldType::Int),
    Field::new("operation.status", "lt.status", FieldType::Text),
    Field::new("barcode", "s.barcode", FieldType::Text),
    Field::new("serial_number", "s.serial_number", FieldType::Text),
    Field::new("model", "s.model", FieldType::Text),
    Field::new("note", "s.note", FieldType::Text),
    Field::new("user_note", "s.user_note", FieldType::Text),
    Field::new("uuid", "s.uuid", FieldType::Text),
    Field::new("platform.name", "s.platform_name", FieldType::Text),
    Field::new("platform.size", "s.size", FieldType::Int),
    Field::new(
        "warehouse_status",
        "(CASE WHEN s.rack_id IS NULL THEN 'in_warehouse' ELSE 'in_rack' END)",
        FieldType::Text,
    ),
];

const SERVER_LIST_SQLITE: ListSpec = ListSpec {
    select: server_select!(
        "(SELECT json_group_array(json_array(x.id, x.port_id, x.switch_id, x.name, x.description, x.admin_status, \
         x.oper_status, x.is_ipmi_connection, x.do_not_collect_traffic, x.idx, x.switch_name)) FROM (SELECT c.id, \
         c.port_id, p.switch_id, p.name, p.description, p.admin_status, p.oper_status, c.is_ipmi_connection, \
         c.do_not_collect_traffic, p.idx, w.name AS switch_name FROM switch_connections c \
         JOIN switch_ports p ON p.id = c.port_id JOIN switches w ON w.id = p.switch_id \
         WHERE c.server_id = s.id ORDER BY c.id) x)",
        "(SELECT json_group_array(json_array(x.id, x.port_id, x.name, x.pdu_id, x.pdu_name, x.power_status, x.idx)) \
         FROM (SELECT c.id, c.port_id, p.name, p.pdu_id, d.name AS pdu_name, p.power_status, p.idx FROM pdu_connections c \
         JOIN pdu_ports p ON p.id = c.port_id JOIN pdus d ON d.id = p.pdu_id WHERE c.server_id = s.id ORDER BY c.id) x)",
        "(SELECT json_group_array(json_array(x.id, x.name, x.family, x.domain, x.status, x.status_info, x.gateway, \
         x.network)) FROM (SELECT i.id, i.name, i.family, i.domain, i.status, i.status_info, n.gateway, \
         n.name AS network FROM ips i JOIN ipnets n ON n.id = i.ipnet_id WHERE i.server_id = s.id \
         AND i.purpose = 'server' ORDER BY i.family, i.addr_key) x)"
    ),
    from: SERVER_FROM,
    // Nothing filtering nor scoping the list, the facets count it.
    count_all_from: None,
    facets: Some(&SERVER_FACETS),
    fields: SERVER_FIELDS,
    tiebreak: "s.id ASC",
};

const SERVER_LIST_POSTGRES: ListSpec = ListSpec {
    select: server_select!(
        "(SELECT COALESCE(json_agg(json_build_array(c.id, c.port_id, p.switch_id, p.name, p.description, \
         p.admin_status, p.oper_status, c.is_ipmi_connection, c.do_not_collect_traffic, p.idx, w.name) ORDER BY c.id), \
         '[]')::text FROM switch_connections c JOIN switch_ports p ON p.id = c.port_id \
         JOIN switches w ON w.id = p.switch_id WHERE c.server_id = s.id)",
        "(SELECT COALESCE(json_agg(json_build_array(c.id, c.port_id, p.name, p.pdu_id, d.name, p.power_status, p.idx) \
         ORDER BY c.id), '[]')::text FROM pdu_connections c JOIN pdu_ports p ON p.id = c.port_id \
         JOIN pdus d ON d.id = p.pdu_id WHERE c.server_id = s.id)",
        "(SELECT COALESCE(json_agg(json_build_array(i.id, i.name, i.family, i.domain, i.status, i.status_info, \
         n.gateway, n.name) ORDER BY i.family, i.addr_key), '[]')::text FROM ips i JOIN ipnets n ON n.id = i.ipnet_id \
         WHERE i.server_id = s.id AND i.purpose = 'server')"
    ),
    from: SERVER_FROM,
    // Nothing filtering nor scoping the list, the facets count it.
    count_all_from: None,
    facets: Some(&SERVER_FACETS),
    fields: SERVER_FIELDS,
    tiebreak: "s.id ASC",
};

/// Summed from the counts the triggers of migration 0017 keep beside the servers, in
/// the transaction of each write: a few rows per configuration, whatever the number of
/// servers.
pub const CONFIGURATION_LIST: ListSpec = ListSpec {
    select: "SELECT c.configuration, c.free_server_count FROM (SELECT f.configuration, CAST(SUM(CASE WHEN \
             f.state = 'ok' AND f.owned = 0 AND f.is_new = 0 AND f.diag_failed = 0 THEN f.servers ELSE 0 END) \
             AS BIGINT) AS free_server_count FROM server_counts f WHERE f.configured = 1 GROUP BY f.configuration) c",
    from: "(SELECT f.configuration, CAST(SUM(CASE WHEN f.state = 'ok' AND f.owned = 0 AND f.is_new = 0 \
           AND f.diag_failed = 0 THEN f.servers ELSE 0 END) AS BIGINT) AS free_server_count FROM server_counts f \
           WHERE f.configured = 1 GROUP BY f.configuration) c",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("configuration", "c.configuration", FieldType::Text),
        Field::new("free_server_count", "c.free_server_count", FieldType::Int),
    ],
    tiebreak: "c.configuration ASC",
};

/// The server fields whose combinations migration 0017's `server_counts` counts: a
/// page filtered by them alone is counted from it.
static SERVER_FACETS: Facets = Facets {
    from: "server_counts f",
    rows: "f.servers",
    fields: &[
        ("state", Facet::Value("f.state")),
        ("configuration", Facet::Value("CASE WHEN f.configured = 1 THEN f.configuration END")),
        ("is_new", Facet::Value("f.is_new")),
        ("owner", Facet::Presence("f.owned")),
        ("owner.id", Facet::Presence("f.owned")),
        ("owner_email", Facet::Presence("f.owned")),
        ("owner.email", Facet::Presence("f.owned")),
        ("diag_error", Facet::Presence("f.diag_failed")),
    ],
};

/// Takes the rack's lock (a no-op write: a row lock in PostgreSQL, the write lock in
/// SQLite), then refuses units `unit..unit+size` when another server than `except`
/// holds one of them. Two placements into one rack thus run one after the other, and
/// two servers never share a unit, whatever their heights.
async fn lock_rack_units(
    tx: &mut crate::audit::Tx<'_>,
    rack: Option<i64>,
    unit: Option<i64>,
    size: i64,
    except: Option<ServerId>,
) -> Result<()> {
    let (Some(rack), Some(unit)) = (rack, unit) else { return Ok(()) };
    sqlx::query("UPDATE racks SET size = size WHERE id = $1").bind(rack).execute(&mut **tx).await?;
    let last = unit + size - 1;
    let other: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT name, unit, size FROM servers WHERE rack_id = $1 AND id <> $2 AND unit IS NOT NULL \
         AND unit <= $3 AND unit + size - 1 >= $4 ORDER BY unit LIMIT 1",
    )
    .bind(rack)
    // No server has id 0.
    .bind(except.map_or(0, ServerId::get))
    .bind(last)
    .bind(unit)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((name, u, sz)) = other {
        let theirs = if sz > 1 { format!("units {u} to {}", u + sz - 1) } else { format!("unit {u}") };
        return Err(StoreError::Conflict(format!("server {name} is in {theirs} of rack {rack}")));
    }
    Ok(())
}

/// The owner of a server (`None`: free); not found when there is no such server.
async fn owner_of(tx: &mut crate::audit::Tx<'_>, server_id: ServerId) -> Result<Option<UserId>> {
    let row: Option<(Option<UserId>,)> =
        sqlx::query_as("SELECT owner_id FROM servers WHERE id = $1").bind(server_id).fetch_optional(&mut **tx).await?;
    row.map(|r| r.0).ok_or_else(|| StoreError::not_found("server", server_id))
}

/// Checks, in the write's transaction, that address `ip` is server `id`'s own, of
/// `family`, and in use; on PostgreSQL it also locks the address's row, so it cannot
/// start being released until the write commits (a release then clears it as main).
async fn lock_main_ip(
    tx: &mut crate::audit::Tx<'_>,
    backend: crate::Backend,
    id: ServerId,
    ip: i64,
    family: i64,
) -> Result<()> {
    let lock = if backend == crate::Backend::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!(
        "SELECT id FROM ips WHERE id = $1 AND server_id = $2 AND family = $3 AND purpose = 'server' \
         AND status = 'ok'{lock}"
    );
    let row: Option<(i64,)> =
        sqlx::query_as(AssertSqlSafe(sql)).bind(ip).bind(id).bind(family).fetch_optional(&mut **tx).await?;
    match row {
        Some(_) => Ok(()),
        None => Err(StoreError::Conflict(format!("address {ip} is not an address of server {id} in use"))),
    }
}

/// The servers of a streamed list, gathered into chunks ([`Store::stream_servers`]).
struct Chunks {
    part: Vec<ServerDetail>,
    size: usize,
    sent: bool,
}

impl Chunks {
    /// Adds a server; a chunk when that filled one.
    fn push(&mut self, d: ServerDetail) -> Option<Vec<ServerDetail>> {
        self.part.push(d);
        (self.part.len() == self.size).then(|| {
            self.sent = true;
            std::mem::replace(&mut self.part, Vec::with_capacity(self.size))
        })
    }

    /// The last message once the rows ended (`read`): the error, or the rest, or nothing
    /// when the rows ended on a full chunk (the first message is sent even when empty).
    fn last(self, read: Result<()>) -> Option<Result<Vec<ServerDetail>>> {
        match read {
            Err(e) => Some(Err(e)),
            Ok(()) if self.sent && self.part.is_empty() => None,
            Ok(()) => Some(Ok(self.part)),
        }
    }
}

/// The restriction a `@user` caller lives under: only servers it owns.
pub fn owned_by(user_id: UserId) -> Scope {
    Scope { sql: "s.owner_id = ?", value: Bind::Int(user_id.get()) }
}

/// Only the servers of `ids` (the set a bulk action confirmed), whatever their
/// number: the list travels as one JSON array bound as text, never as SQL.
pub fn with_ids(backend: crate::Backend, ids: &[ServerId]) -> Scope {
    let sql = match backend {
        crate::Backend::Sqlite => "s.id IN (SELECT value FROM json_each(?))",
        crate::Backend::Postgres => "s.id IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb))::bigint)",
    };
    let list: Vec<String> = ids.iter().map(ServerId::to_string).collect();
    Scope { sql, value: Bind::Text(format!("[{}]", list.join(","))) }
}

impl Store {
    pub async fn create_server(&self, s: &NewServer) -> Result<ServerId> {
        self.check_placement(s.location_id, s.rack_id, s.unit, s.details.size).await?;
        let bmc = s.bmc.as_ref();
        let d = &s.details;
        let mut tx = self.write().await?;
        lock_rack_units(&mut tx, s.rack_id, s.unit, d.size, None).await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO servers (name, location_id, rack_id, unit, mac, domain, ipmi_address, ipmi_type, ipmi_user, \
             ipmi_password, ipmi_web_url, created_at, barcode, serial_number, model, note, user_note, platform_name, \
             size, uuid, ipmi_tls_fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16, $17, $18, $19, $20, $21) RETURNING id",
        )
        .bind(s.name.clone())
        .bind(s.location_id)
        .bind(s.rack_id)
        .bind(s.unit)
        .bind(s.mac.clone())
        .bind(s.domain.clone())
        .bind(bmc.map(|b| b.address.clone()))
        .bind(bmc.map(|b| b.kind.as_str().to_owned()))
        .bind(bmc.map(|b| b.user.clone()))
        .bind(bmc.map(|b| self.seal(crate::seal::BMC_PASSWORD, &b.password)))
        .bind(bmc.and_then(|b| b.web_url.clone()))
        .bind(now())
        .bind(d.barcode.clone())
        .bind(d.serial_number.clone())
        .bind(d.model.clone())
        .bind(d.note.clone())
        .bind(d.user_note.clone())
        .bind(d.platform_name.clone())
        .bind(d.size)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(bmc.and_then(|b| b.tls_fingerprint.clone()))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            StoreError::conflict_on_constraint(e, || {
                "another server has that name, MAC address or rack unit".to_owned()
            })
        })?;
        crate::audit::set_target("server", id);
        tx.commit().await?;
        Ok(ServerId(id))
    }

    /// The location exists, the rack is in it, and units `unit..unit+size` fit in the
    /// rack. Whether they are free is checked under the rack's lock
    /// ([`lock_rack_units`]).
    async fn check_placement(
        &self,
        location_id: i64,
        rack_id: Option<i64>,
        unit: Option<i64>,
        size: i64,
    ) -> Result<()> {
        self.get_location(location_id).await?;
        if let Some(rack_id) = rack_id {
            let rack = self.get_rack(rack_id).await?;
            if rack.location_id != location_id {
                return Err(StoreError::Conflict(format!(
                    "rack {rack_id} is in location {}, not {location_id}",
                    rack.location_id
                )));
            }
            if let Some(u) = unit
                && (u < 1 || u + size - 1 > rack.size)
            {
                let last = u + size - 1;
                let units = if size > 1 { format!("units {u} to {last} are") } else { format!("unit {u} is") };
                return Err(StoreError::Conflict(format!("{units} outside rack {rack_id} (units 1 to {})", rack.size)));
            }
        }
        Ok(())
    }

    fn server_list(&self) -> &'static ListSpec {
        match self.backend() {
            crate::Backend::Sqlite => &SERVER_LIST_SQLITE,
            crate::Backend::Postgres => &SERVER_LIST_POSTGRES,
        }
    }

    /// A page of servers with their connections; `scopes` restrict what the caller sees.
    pub async fn list_servers(&self, q: &ListQuery, scopes: &[Scope]) -> Result<Page<ServerDetail>> {
        let page: Page<ServerRow> = match &self.native {
            Some(native) => self.fetch_native_page(native, self.server_list(), q, scopes).await?,
            None => self.fetch_page(self.server_list(), q, scopes).await?,
        };
        Ok(Page { items: page.items.into_iter().map(ServerDetail::from_row).collect::<Result<_>>()?, size: page.size })
    }

    /// Every server `q` matches (a query without `limit`: the billing's "all servers"),
    /// sent as it is read in chunks of up to `chunk`, so that a large installation's
    /// full list is never held whole. One statement, so one snapshot of the database.
    /// The first message tells whether the statement ran (its error, or a first chunk,
    /// empty when nothing matches); an error later ends the stream with it. Reading
    /// stops when the receiver is dropped (the client went away).
    pub async fn stream_servers(
        &self,
        q: &ListQuery,
        scopes: &[Scope],
        chunk: usize,
    ) -> Result<mpsc::Receiver<Result<Vec<ServerDetail>>>> {
        debug_assert!(q.limit.is_none(), "a page is read whole (list_servers)");
        let (rows, _) = crate::list::page_statements(self.server_list(), q, scopes)?;
        let mut chunks = Chunks { part: Vec::with_capacity(chunk.max(1)), size: chunk.max(1), sent: false };
        let (tx, rx) = mpsc::channel(4);
        match &self.native {
            Some(native) => {
                let native = native.clone();
                tokio::task::spawn_blocking(move || {
                    let read = native.for_each_row::<ServerRow>(&rows.text, &rows.binds, |row| {
                        Ok(match chunks.push(ServerDetail::from_row(row)?) {
                            Some(full) => tx.blocking_send(Ok(full)).is_ok(),
                            None => true,
                        })
                    });
                    if let Some(last) = chunks.last(read) {
                        let _ = tx.blocking_send(last);
                    }
                });
            }
            None => {
                let pool = self.pool().clone();
                tokio::spawn(async move {
                    let mut stream = bind_query_as::<ServerRow>(&rows.text, &rows.binds).fetch(&pool);
                    let read = loop {
                        let row = match stream.try_next().await {
                            Ok(Some(row)) => row,
                            Ok(None) => break Ok(()),
                            Err(e) => break Err(e.into()),
                        };
                        let detail = match ServerDetail::from_row(row) {
                            Ok(d) => d,
                            Err(e) => break Err(e),
                        };
                        if let Some(full) = chunks.push(detail)
                            && tx.send(Ok(full)).await.is_err()
                        {
                            return;
                        }
                    };
                    if let Some(last) = chunks.last(read) {
                        let _ = tx.send(last).await;
                    }
                });
            }
        }
        Ok(rx)
    }

    /// Whether the server exists and the caller may see it: a cheap check before
    /// acting on it.
    pub async fn check_server(&self, id: ServerId, scopes: &[Scope]) -> Result<()> {
        let mut sql = crate::list::SqlBuf { text: "SELECT s.id FROM servers s WHERE s.id = ".into(), binds: vec![] };
        sql.bind(Bind::Int(id.get()));
        sql.and_scopes(scopes);
        let row: Option<(i64,)> = bind_query_as(&sql.text, &sql.binds).fetch_optional(self.pool()).await?;
        row.map(|_| ()).ok_or_else(|| StoreError::not_found("server", id))
    }

    /// One server, if the caller may see it: one statement, connections included.
    pub async fn get_server(&self, id: ServerId, scopes: &[Scope]) -> Result<ServerDetail> {
        Ok(self.get_server_versioned(id, scopes).await?.0)
    }

    /// One server, and on PostgreSQL the [`DbVersion`] it was read at: the snapshot of
    /// the same statement, so the version is exactly the read's. `None` on SQLite,
    /// whose version a cache reads before the read ([`Store::db_version`]).
    pub async fn get_server_versioned(
        &self,
        id: ServerId,
        scopes: &[Scope],
    ) -> Result<(ServerDetail, Option<DbVersion>)> {
        /// A server's row and the snapshot of the statement that read it.
        #[derive(FromRow)]
        struct Versioned {
            #[sqlx(flatten)]
            row: ServerRow,
            db_snapshot: String,
        }
        let select = self.server_list().select;
        let mut sql = crate::list::SqlBuf { text: String::with_capacity(select.len() + 80), binds: vec![] };
        match select.strip_prefix("SELECT ") {
            Some(rest) if self.backend() == crate::Backend::Postgres => {
                sql.push("SELECT pg_current_snapshot()::text AS db_snapshot, ");
                sql.push(rest);
            }
            _ => sql.push(select),
        }
        sql.push(" WHERE s.id = ");
        sql.bind(Bind::Int(id.get()));
        sql.and_scopes(scopes);
        let (row, version) = match &self.native {
            Some(native) => (native.typed_rows(&sql.text, &sql.binds)?.pop(), None),
            None if self.backend() == crate::Backend::Postgres => {
                let row: Option<Versioned> = bind_query_as(&sql.text, &sql.binds).fetch_optional(self.pool()).await?;
                match row {
                    Some(v) => (Some(v.row), Some(DbVersion::snapshot(v.db_snapshot))),
                    None => (None, None),
                }
            }
            None => (bind_query_as(&sql.text, &sql.binds).fetch_optional(self.pool()).await?, None),
        };
        let row = row.ok_or_else(|| StoreError::not_found("server", id))?;
        Ok((ServerDetail::from_row(row)?, version))
    }

    pub async fn update_server(&self, id: ServerId, p: &ServerPatch) -> Result<()> {
        let current = self.get_server(id, &[]).await?.server;
        let placement = if p.rack_id.is_some() || p.unit.is_some() || p.size.is_some() {
            let rack = p.rack_id.unwrap_or(current.rack_id);
            let unit = p.unit.unwrap_or(current.unit);
            let size = p.size.unwrap_or(current.details.size);
            self.check_placement(current.location_id, rack, unit, size).await?;
            Some((rack, unit, size))
        } else {
            None
        };
        let mut u = Patch::new("servers");
        for (col, v) in [
            ("barcode", &p.barcode),
            ("serial_number", &p.serial_number),
            ("model", &p.model),
            ("note", &p.note),
            ("user_note", &p.user_note),
            ("platform_name", &p.platform_name),
        ] {
            if let Some(v) = v {
                u.set(col, v.as_str().into());
            }
        }
        if let Some(v) = p.size {
            u.set("size", v.into());
        }
        if let Some(v) = &p.name {
            u.set("name", v.as_str().into());
        }
        if let Some(v) = &p.domain {
            u.set("domain", v.as_str().into());
        }
        if let Some(v) = &p.mac {
            u.set("mac", v.clone().into());
        }
        if let Some(v) = p.rack_id {
            u.set("rack_id", v.into());
        }
        if let Some(v) = p.unit {
            u.set("unit", v.into());
        }
        if let Some(bmc) = &p.bmc {
            let b = bmc.as_ref();
            u.set("ipmi_address", b.map(|b| b.address.clone()).into());
            u.set("ipmi_type", b.map(|b| b.kind.as_str().to_owned()).into());
            u.set("ipmi_user", b.map(|b| b.user.clone()).into());
            u.set("ipmi_password", b.map(|b| self.seal(crate::seal::BMC_PASSWORD, &b.password)).into());
            u.set("ipmi_web_url", b.and_then(|b| b.web_url.clone()).into());
            u.set("ipmi_tls_fingerprint", b.and_then(|b| b.tls_fingerprint.clone()).into());
        }
        if let Some(v) = &p.custom_configuration {
            u.set("custom_configuration", v.clone().into());
            let effective = v.clone().or(current.generated_configuration.clone());
            u.set("configuration", effective.into());
        }
        if let Some(v) = p.is_new {
            u.set("is_new", v.into());
        }
        let mains = [("main_ipv4", 2, p.main_ipv4), ("main_ipv6", 10, p.main_ipv6)];
        for (col, _, v) in mains {
            if let Some(v) = v {
                u.set(col, v.into());
            }
        }
        if u.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        if let Some((rack, unit, size)) = placement {
            lock_rack_units(&mut tx, rack, unit, size, Some(id)).await?;
        }
        for (_, family, v) in mains {
            if let Some(Some(ip)) = v {
                lock_main_ip(&mut tx, self.backend(), id, ip, family).await?;
            }
        }
        let n = u.execute_in(&mut tx, id.get()).await.map_err(|e| {
            StoreError::conflict_on_constraint(e, || "another server has that name, MAC address or rack unit".into())
        })?;
        if n == 0 {
            return Err(StoreError::not_found("server", id));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every server's boot MAC with its known hardware (`hardware_info` JSON), for
    /// servers that have both: the demo hands them to its fake machines.
    pub async fn hardware_by_mac(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT mac, hardware_info FROM servers WHERE mac IS NOT NULL AND hardware_info <> '{}' ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Stores hardware as entered by hand (or found by diagnostics) with the
    /// configuration generated from it; a custom configuration still wins.
    pub async fn set_hardware_info(&self, id: ServerId, hardware_json: &str, generated: Option<&str>) -> Result<()> {
        let mut tx = self.write().await?;
        let r = sqlx::query(
            "UPDATE servers SET hardware_info = $1, generated_configuration = $2, \
             configuration = COALESCE(custom_configuration, $2) WHERE id = $3",
        )
        .bind(hardware_json.to_owned())
        .bind(generated.map(str::to_owned))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("server", id));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a server nobody owns and no operation runs on, with its connections.
    pub async fn delete_server(&self, id: ServerId) -> Result<()> {
        let mut tx = self.write().await?;
        let r = sqlx::query(
            "DELETE FROM servers WHERE id = $1 AND owner_id IS NULL AND NOT EXISTS \
             (SELECT 1 FROM tasks WHERE server_id = $1 AND status IN ('pending', 'running'))",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            StoreError::conflict_on_constraint(e, || {
                format!("server {id} still has IP addresses (or other records); release them first")
            })
        })?;
        if r.rows_affected() == 1 {
            return tx.commit().await;
        }
        drop(tx);
        if let Some((task, name)) = self.active_task(id).await? {
            return Err(StoreError::Conflict(format!("server {id} is busy with task {task} ({name})")));
        }

        let owner = self.get_server(id, &[]).await?.server.owner_email;
        Err(StoreError::Conflict(format!("server {id} is owned by {}; release it first", owner.unwrap_or_default())))
    }

    /// Makes `user_id` the owner. One conditional UPDATE decides, so of many callers
    /// racing for one free server exactly one wins; the owner itself may repeat it.
    pub async fn assign_owner(&self, server_id: ServerId, user_id: UserId) -> Result<()> {
        self.get_user(user_id).await?;
        let mut tx = self.write().await?;
        let before = owner_of(&mut tx, server_id).await?;
        let r = sqlx::query(
            "UPDATE servers SET owner_id = $1, owner_since = CASE WHEN owner_id = $1 THEN owner_since ELSE $3 END \
             WHERE id = $2 AND (owner_id IS NULL OR owner_id = $1)",
        )
        .bind(user_id)
        .bind(server_id)
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_constraint(e, || format!("user {user_id} was just deleted")))?;
        if r.rows_affected() == 1 {
            if before != Some(user_id) {
                crate::audit::change("owner", before.into(), user_id.into());
                let e = serde_json::json!({"server": server_id, "owner": user_id, "previous": before});
                crate::webhooks::emit(&mut tx, "server.owner", Some(server_id), e).await?;
            }
            return tx.commit().await;
        }
        drop(tx);
        let current = self.get_server(server_id, &[]).await?.server;
        Err(StoreError::Conflict(format!(
            "server {server_id} is owned by another user ({})",
            current.owner_email.unwrap_or_default()
        )))
    }

    /// Releases a server (and forgets the customer's note on it); releasing a free one
    /// is not an error.
    pub async fn release_owner(&self, server_id: ServerId) -> Result<()> {
        let mut tx = self.write().await?;
        let before = owner_of(&mut tx, server_id).await?;
        // The customer's own note goes with the customer.
        sqlx::query("UPDATE servers SET owner_id = NULL, owner_since = NULL, user_note = '' WHERE id = $1")
            .bind(server_id)
            .execute(&mut *tx)
            .await?;
        if before.is_some() {
            crate::audit::change("owner", before.into(), serde_json::Value::Null);
            let e = serde_json::json!({"server": server_id, "owner": null, "previous": before});
            crate::webhooks::emit(&mut tx, "server.owner", Some(server_id), e).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn configuration_counts(&self, q: &ListQuery) -> Result<Page<ConfigurationCount>> {
        self.fetch_page(&CONFIGURATION_LIST, q, &[]).await
    }

    /// BMC access data with the password, for the power driver only.
    pub async fn bmc_credentials(&self, server_id: ServerId) -> Result<Option<BmcAccess>> {
        type Row = (Option<String>, Option<BmcType>, Option<String>, Option<String>, Option<String>, Option<String>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT ipmi_address, ipmi_type, ipmi_user, ipmi_password, ipmi_web_url, ipmi_tls_fingerprint \
             FROM servers WHERE id = $1",
        )
        .bind(server_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Err(StoreError::not_found("server", server_id)) };
        Ok(match row {
            (Some(address), Some(kind), user, password, web_url, tls_fingerprint) => Some(BmcAccess {
                address,
                kind,
                user: user.unwrap_or_default(),
                password: self.open_opt(crate::seal::BMC_PASSWORD, password)?.unwrap_or_default(),
                web_url,
                tls_fingerprint,
            }),
            _ => None,
        })
    }

    pub async fn connect_switch_port(&self, server_id: ServerId, port_id: i64, is_ipmi: bool) -> Result<i64> {
        let mut tx = self.write().await?;
        crate::audit::require_row(&mut tx, "servers", "server", server_id.get()).await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO switch_connections (server_id, port_id, is_ipmi_connection) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(server_id)
        .bind(port_id)
        .bind(i64::from(is_ipmi))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.port_conflict(e, "switch port", port_id))?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn connect_pdu_port(&self, server_id: ServerId, port_id: i64) -> Result<i64> {
        let mut tx = self.write().await?;
        crate::audit::require_row(&mut tx, "servers", "server", server_id.get()).await?;
        let (id,): (i64,) =
            sqlx::query_as("INSERT INTO pdu_connections (server_id, port_id) VALUES ($1, $2) RETURNING id")
                .bind(server_id)
                .bind(port_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.port_conflict(e, "PDU port", port_id))?;
        tx.commit().await?;
        Ok(id)
    }

    fn port_conflict(&self, e: sqlx::Error, what: &str, port_id: i64) -> StoreError {
        if let sqlx::Error::Database(db) = &e
            && db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation
        {
            return StoreError::NotFound { what: "port", id: port_id.to_string() };
        }
        StoreError::conflict_on_constraint(e, || format!("{what} {port_id} is already connected to a server"))
    }

    /// Removes a connection of the server; `pdu` picks the table.
    pub async fn disconnect(&self, server_id: ServerId, connection_id: i64, pdu: bool) -> Result<()> {
        let mut tx = self.write().await?;
        let table = if pdu { "pdu_connections" } else { "switch_connections" };
        let sql = format!("DELETE FROM {table} WHERE id = $1 AND server_id = $2");
        let r = sqlx::query(AssertSqlSafe(sql)).bind(connection_id).bind(server_id).execute(&mut *tx).await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("connection", connection_id));
        }
        tx.commit().await?;
        Ok(())
    }
}
