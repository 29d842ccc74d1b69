//! Equipment other than servers: locations, racks, switches and PDUs with their
//! ports, and OS templates. Device secrets (SNMP communities and keys) are written
//! here and read back only by [`Store::device_secret`], for drivers.

use dcim_core::query::ListQuery;
use dcim_core::{DeviceProtocol, PortStatus, TemplateType};
use sqlx::{AssertSqlSafe, FromRow};

use crate::list::{Bind, Field, FieldType, ListSpec, Page, Patch, Scope};
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, FromRow)]
pub struct LocationRow {
    pub id: i64,
    pub name: String,
    pub geolocation: String,
    pub userspace: Option<i64>,
}

#[derive(Debug, Clone, FromRow)]
pub struct RackRow {
    pub id: i64,
    pub name: String,
    pub location_id: i64,
    pub size: i64,
    /// Servers placed in the rack.
    pub device_count: i64,
}

/// A switch or a PDU (they share a shape; `model` is empty for switches).
#[derive(Debug, Clone, FromRow)]
pub struct DeviceRow {
    pub id: i64,
    pub name: String,
    pub location_id: i64,
    pub ip: String,
    pub protocol: DeviceProtocol,
    pub model: String,
    pub port_count: i64,
}

/// A switch port or PDU outlet, with the server connected to it if any.
#[derive(Debug, Clone, FromRow)]
pub struct PortRow {
    pub id: i64,
    pub device_id: i64,
    pub idx: i64,
    pub name: String,
    pub description: String,
    /// Switch ports: the description configured on the port (ifAlias).
    pub alias: String,
    /// A PDU outlet's power is given as both (`up`, `down` or `unknown`).
    pub admin_status: PortStatus,
    pub oper_status: PortStatus,
    pub speed: Option<i64>,
    pub server_id: Option<i64>,
    pub server_name: Option<String>,
}

/// A port as a device reports it (by sync, or by the fake driver at creation).
#[derive(Debug, Clone, PartialEq)]
pub struct PortReport {
    pub idx: i64,
    pub name: String,
    pub description: String,
    pub alias: String,
    pub admin_status: String,
    pub oper_status: String,
    pub speed: Option<i64>,
}

/// A switch or PDU the port poller reads.
#[derive(Debug, Clone, FromRow)]
pub struct PolledDevice {
    pub id: i64,
    pub name: String,
    pub ip: String,
    pub protocol: DeviceProtocol,
    pub model: String,
    /// SNMP access data (JSON).
    pub secret: String,
    pub location_id: i64,
}

/// A port's statuses (a PDU outlet has one: its power, given as both).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct PortStates {
    pub idx: i64,
    pub admin_status: String,
    pub oper_status: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct OsTemplateRow {
    pub id: i64,
    pub name: String,
    #[sqlx(rename = "type")]
    pub kind: TemplateType,
    pub tags: String,
    pub efi: i64,
    pub image_url: Option<String>,
    pub image_sha256: Option<String>,
    pub installer: Option<String>,
    pub installer_kernel: Option<String>,
    pub installer_initrd: Option<String>,
    pub installer_template: Option<String>,
}

/// The raw disk image an `os` template deploys and its SHA-256 (hex); always set together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsImage {
    pub url: String,
    pub sha256: String,
}

/// The installer an `os` template boots instead of an image: its kind (`kickstart`,
/// `preseed`, `autoinstall`), the URLs of its kernel and initrd, and its answer-file
/// text (`None`: the built-in default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsInstaller {
    pub kind: String,
    pub kernel: String,
    pub initrd: String,
    pub template: Option<String>,
}

/// Which of the two device tables an operation addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Switch,
    Pdu,
}

impl DeviceKind {
    fn table(self) -> &'static str {
        match self {
            DeviceKind::Switch => "switches",
            DeviceKind::Pdu => "pdus",
        }
    }

    pub fn what(self) -> &'static str {
        match self {
            DeviceKind::Switch => "switch",
            DeviceKind::Pdu => "pdu",
        }
    }

    fn port_what(self) -> &'static str {
        match self {
            DeviceKind::Switch => "switch port",
            DeviceKind::Pdu => "pdu outlet",
        }
    }
}

/// A new switch or PDU. `secret` is the SNMP access data as JSON.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub name: String,
    pub location_id: i64,
    pub ip: String,
    pub protocol: DeviceProtocol,
    pub model: String,
    pub secret: String,
}

pub const LOCATION_LIST: ListSpec = ListSpec {
    select: "SELECT id, name, geolocation, userspace FROM locations",
    from: "locations",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("id", "id", FieldType::Int),
        Field::new("name", "name", FieldType::Text),
        Field::new("geolocation", "geolocation", FieldType::Text),
        Field::new("userspace", "userspace", FieldType::Int),
    ],
    tiebreak: "id ASC",
};

pub const RACK_LIST: ListSpec = ListSpec {
    select: "SELECT id, name, location_id, size, \
             (SELECT COUNT(*) FROM servers s WHERE s.rack_id = racks.id) AS device_count FROM racks",
    from: "racks",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("id", "id", FieldType::Int),
        Field::new("name", "name", FieldType::Text),
        Field::new("location_id", "location_id", FieldType::Int),
        Field::new("size", "size", FieldType::Int),
        Field::new("device_count", "(SELECT COUNT(*) FROM servers s WHERE s.rack_id = racks.id)", FieldType::Int),
    ],
    tiebreak: "id ASC",
};

const DEVICE_FIELDS: &[Field] = &[
    Field::new("id", "d.id", FieldType::Int),
    Field::new("name", "d.name", FieldType::Text),
    Field::new("location_id", "d.location_id", FieldType::Int),
    Field::new("ip", "d.ip", FieldType::Text),
    Field::new("protocol", "d.protocol", FieldType::Text),
];

pub const SWITCH_LIST: ListSpec = ListSpec {
    select: "SELECT d.id, d.name, d.location_id, d.ip, d.protocol, '' AS model, \
             (SELECT COUNT(*) FROM switch_ports p WHERE p.switch_id = d.id) AS port_count FROM switches d",
    from: "switches d",
    count_all_from: None,
    facets: None,
    fields: DEVICE_FIELDS,
    tiebreak: "d.id ASC",
};

pub const PDU_LIST: ListSpec = ListSpec {
    select: "SELECT d.id, d.name, d.location_id, d.ip, d.protocol, d.model, \
             (SELECT COUNT(*) FROM pdu_ports p WHERE p.pdu_id = d.id) AS port_count FROM pdus d",
    from: "pdus d",
    count_all_from: None,
    facets: None,
    fields: DEVICE_FIELDS,
    tiebreak: "d.id ASC",
};

const PORT_FIELDS: &[Field] = &[
    Field::new("id", "p.id", FieldType::Int),
    Field::new("index", "p.idx", FieldType::Int),
    Field::new("name", "p.name", FieldType::Text),
    Field::new("description", "p.description", FieldType::Text),
    Field::new("alias", "p.alias", FieldType::Text),
    Field::new("admin_status", "p.admin_status", FieldType::Text),
    Field::new("oper_status", "p.oper_status", FieldType::Text),
    Field::new("speed", "p.speed", FieldType::Int),
    Field::new("server", "c.server_id", FieldType::Int),
];

pub const SWITCH_PORT_LIST: ListSpec = ListSpec {
    select: "SELECT p.id, p.switch_id AS device_id, p.idx, p.name, p.description, p.alias, p.admin_status, p.oper_status, \
             p.speed, c.server_id, s.name AS server_name FROM switch_ports p \
             LEFT JOIN switch_connections c ON c.port_id = p.id LEFT JOIN servers s ON s.id = c.server_id",
    from: "switch_ports p LEFT JOIN switch_connections c ON c.port_id = p.id",
    count_all_from: None,
    facets: None,
    fields: PORT_FIELDS,
    tiebreak: "p.idx ASC",
};

pub const PDU_PORT_LIST: ListSpec = ListSpec {
    select: "SELECT p.id, p.pdu_id AS device_id, p.idx, p.name, '' AS description, '' AS alias, p.power_status AS admin_status, \
             p.power_status AS oper_status, NULL AS speed, c.server_id, s.name AS server_name FROM pdu_ports p \
             LEFT JOIN pdu_connections c ON c.port_id = p.id LEFT JOIN servers s ON s.id = c.server_id",
    from: "pdu_ports p LEFT JOIN pdu_connections c ON c.port_id = p.id",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("id", "p.id", FieldType::Int),
        Field::new("index", "p.idx", FieldType::Int),
        Field::new("name", "p.name", FieldType::Text),
        Field::new("power_status", "p.power_status", FieldType::Text),
        Field::new("server", "c.server_id", FieldType::Int),
    ],
    tiebreak: "p.idx ASC",
};

pub const OS_TEMPLATE_LIST: ListSpec = ListSpec {
    select: "SELECT id, name, type, tags, efi, image_url, image_sha256, installer, installer_kernel, installer_initrd, \
             installer_template FROM os_templates",
    from: "os_templates",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("id", "id", FieldType::Int),
        Field::new("name", "name", FieldType::Text),
        Field::new("type", "type", FieldType::Text),
    ],
    tiebreak: "id ASC",
};

fn in_use(what: &str, id: i64) -> impl FnOnce() -> String {
    let msg = format!("{what} {id} is still referred to; remove what uses it first");
    move || msg
}

impl Store {
    async fn get_one<T>(&self, spec: &ListSpec, key: &'static str, what: &'static str, id: i64) -> Result<T>
    where
        T: for<'r> FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let sql = format!("{} WHERE {key} = $1", spec.select);
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found(what, id))
    }

    /// The descriptions (ifAlias) set on fake switches' ports: (switch address, ifIndex,
    /// alias), for the demo to hand to its fake switches so a sync reads them back.
    pub async fn fake_port_aliases(&self) -> Result<Vec<(String, i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT w.ip, p.idx, p.alias FROM switch_ports p JOIN switches w ON w.id = p.switch_id \
             WHERE w.protocol = 'fake' AND p.alias <> '' ORDER BY w.id, p.idx",
        )
        .fetch_all(self.pool())
        .await?)
    }

    async fn delete_row(&self, table: &str, what: &'static str, id: i64) -> Result<()> {
        let mut tx = self.write().await?;
        let sql = format!("DELETE FROM {table} WHERE id = $1");
        let r = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_on_constraint(e, in_use(what, id)))?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found(what, id));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn apply_patch(&self, p: Patch, what: &'static str, id: i64) -> Result<()> {
        if p.is_empty() {
            return Ok(());
        }
        let n = p.execute(self, id).await.map_err(|e| {
            StoreError::conflict_on_constraint(e, || format!("the change conflicts with another {what}"))
        })?;
        if n == 0 {
            return Err(StoreError::not_found(what, id));
        }
        Ok(())
    }

    // --- locations

    pub async fn create_location(&self, name: &str, geolocation: &str, userspace: Option<i64>) -> Result<i64> {
        let mut tx = self.write().await?;
        let (id,): (i64,) =
            sqlx::query_as("INSERT INTO locations (name, geolocation, userspace) VALUES ($1, $2, $3) RETURNING id")
                .bind(name.to_owned())
                .bind(geolocation.to_owned())
                .bind(userspace)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict_on_constraint(e, || format!("location '{name}' exists")))?;
        crate::audit::set_target("location", id);
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_locations(&self, q: &ListQuery) -> Result<Page<LocationRow>> {
        self.fetch_page(&LOCATION_LIST, q, &[]).await
    }

    pub async fn get_location(&self, id: i64) -> Result<LocationRow> {
        self.get_one(&LOCATION_LIST, "id", "location", id).await
    }

    pub async fn update_location(&self, id: i64, name: Option<&str>, geolocation: Option<&str>) -> Result<()> {
        let mut p = Patch::new("locations");
        if let Some(v) = name {
            p.set("name", v.into());
        }
        if let Some(v) = geolocation {
            p.set("geolocation", v.into());
        }
        self.apply_patch(p, "location", id).await
    }

    pub async fn delete_location(&self, id: i64) -> Result<()> {
        self.delete_row("locations", "location", id).await
    }

    // --- racks

    pub async fn create_rack(&self, name: &str, location_id: i64, size: i64) -> Result<i64> {
        let mut tx = self.write().await?;
        crate::audit::require_row(&mut tx, "locations", "location", location_id).await?;
        let (id,): (i64,) =
            sqlx::query_as("INSERT INTO racks (name, location_id, size) VALUES ($1, $2, $3) RETURNING id")
                .bind(name.to_owned())
                .bind(location_id)
                .bind(size)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| {
                    StoreError::conflict_on_constraint(e, || format!("rack '{name}' exists in that location"))
                })?;
        crate::audit::set_target("rack", id);
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_racks(&self, q: &ListQuery) -> Result<Page<RackRow>> {
        self.fetch_page(&RACK_LIST, q, &[]).await
    }

    pub async fn get_rack(&self, id: i64) -> Result<RackRow> {
        self.get_one(&RACK_LIST, "id", "rack", id).await
    }

    pub async fn update_rack(&self, id: i64, name: Option<&str>, size: Option<i64>) -> Result<()> {
        let mut p = Patch::new("racks");
        if let Some(v) = name {
            p.set("name", v.into());
        }
        if let Some(v) = size {
            p.set("size", v.into());
        }
        self.apply_patch(p, "rack", id).await
    }

    pub async fn delete_rack(&self, id: i64) -> Result<()> {
        self.delete_row("racks", "rack", id).await
    }

    // --- switches and PDUs

    /// Creates a device and, when the device already reported them, its ports, in
    /// one transaction.
    pub async fn create_device(&self, kind: DeviceKind, d: &NewDevice, ports: &[PortReport]) -> Result<i64> {
        self.get_location(d.location_id).await?;
        let mut tx = self.write().await?;
        let sql = match kind {
            DeviceKind::Switch => {
                "INSERT INTO switches (name, location_id, ip, protocol, snmp) VALUES ($1, $2, $3, $4, $5) RETURNING id"
            }
            DeviceKind::Pdu => {
                "INSERT INTO pdus (name, location_id, ip, protocol, snmp, model) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
            }
        };
        let mut q = sqlx::query_as(sql)
            .bind(d.name.clone())
            .bind(d.location_id)
            .bind(d.ip.clone())
            .bind(d.protocol.as_str())
            .bind(self.seal(&crate::seal::snmp_column(kind.table()), &d.secret));
        if kind == DeviceKind::Pdu {
            q = q.bind(d.model.clone());
        }
        let (id,): (i64,) = q.fetch_one(&mut *tx).await.map_err(|e| {
            StoreError::conflict_on_constraint(e, || format!("a {} named '{}' exists", kind.what(), d.name))
        })?;
        upsert_ports(&mut tx, kind, id, ports).await?;
        crate::audit::set_target(kind.what(), id);
        tx.commit().await?;
        Ok(id)
    }

    /// Stores ports as the device reported them, keyed by index: existing rows are
    /// updated in place, so their ids and the servers connected to them stay.
    pub async fn sync_ports(&self, kind: DeviceKind, device_id: i64, ports: &[PortReport]) -> Result<()> {
        self.get_device(kind, device_id).await?;
        let mut tx = self.write().await?;
        upsert_ports(&mut tx, kind, device_id, ports).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_devices(&self, kind: DeviceKind, q: &ListQuery) -> Result<Page<DeviceRow>> {
        let spec = match kind {
            DeviceKind::Switch => &SWITCH_LIST,
            DeviceKind::Pdu => &PDU_LIST,
        };
        self.fetch_page(spec, q, &[]).await
    }

    pub async fn get_device(&self, kind: DeviceKind, id: i64) -> Result<DeviceRow> {
        let spec = match kind {
            DeviceKind::Switch => &SWITCH_LIST,
            DeviceKind::Pdu => &PDU_LIST,
        };
        self.get_one(spec, "d.id", kind.what(), id).await
    }

    pub async fn update_device(
        &self,
        kind: DeviceKind,
        id: i64,
        name: Option<&str>,
        ip: Option<&str>,
        secret: Option<&str>,
    ) -> Result<()> {
        let mut p = Patch::new(kind.table());
        if let Some(v) = name {
            p.set("name", v.into());
        }
        if let Some(v) = ip {
            p.set("ip", v.into());
        }
        if let Some(v) = secret {
            p.set("snmp", self.seal(&crate::seal::snmp_column(kind.table()), v).into());
        }
        self.apply_patch(p, kind.what(), id).await
    }

    /// Deletes a device with its ports; refused while a server is connected to one.
    pub async fn delete_device(&self, kind: DeviceKind, id: i64) -> Result<()> {
        self.delete_row(kind.table(), kind.what(), id).await
    }

    /// The device's SNMP access data (JSON), for its driver only.
    pub async fn device_secret(&self, kind: DeviceKind, id: i64) -> Result<String> {
        let sql = format!("SELECT snmp FROM {} WHERE id = $1", kind.table());
        let row: Option<(String,)> = sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(self.pool()).await?;
        let stored = row.map(|r| r.0).ok_or_else(|| StoreError::not_found(kind.what(), id))?;
        self.open(&crate::seal::snmp_column(kind.table()), &stored)
    }

    pub async fn list_ports(&self, kind: DeviceKind, device_id: i64, q: &ListQuery) -> Result<Page<PortRow>> {
        self.get_device(kind, device_id).await?;
        let (spec, scope) = match kind {
            DeviceKind::Switch => (&SWITCH_PORT_LIST, "p.switch_id = ?"),
            DeviceKind::Pdu => (&PDU_PORT_LIST, "p.pdu_id = ?"),
        };
        self.fetch_page(spec, q, &[Scope { sql: scope, value: Bind::Int(device_id) }]).await
    }

    /// One port of a device, with the server connected to it.
    /// A missing device is told apart from a missing port.
    pub async fn get_port(&self, kind: DeviceKind, device_id: i64, port_id: i64) -> Result<PortRow> {
        let (spec, device) = match kind {
            DeviceKind::Switch => (&SWITCH_PORT_LIST, "p.switch_id"),
            DeviceKind::Pdu => (&PDU_PORT_LIST, "p.pdu_id"),
        };
        let sql = format!("{} WHERE {device} = $1 AND p.id = $2", spec.select);
        let row = sqlx::query_as(AssertSqlSafe(sql)).bind(device_id).bind(port_id).fetch_optional(self.pool()).await?;
        match row {
            Some(port) => Ok(port),
            None => {
                self.get_device(kind, device_id).await?;
                Err(StoreError::not_found(kind.port_what(), port_id))
            }
        }
    }

    /// Records a switch port's admin status as an operator set it on the device, with
    /// the change in the audit trail.
    pub async fn set_switch_port_admin(&self, port_id: i64, before: PortStatus, after: PortStatus) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE switch_ports SET admin_status = $1 WHERE id = $2")
            .bind(after.as_str())
            .bind(port_id)
            .execute(&mut *tx)
            .await?;
        if before != after {
            crate::audit::change("admin_status", before.as_str().into(), after.as_str().into());
        }
        tx.commit().await
    }

    /// Records a PDU outlet's power (`up` or `down`) as just set on the device.
    pub async fn set_pdu_port_power(&self, port_id: i64, before: PortStatus, after: PortStatus) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE pdu_ports SET power_status = $1 WHERE id = $2")
            .bind(after.as_str())
            .bind(port_id)
            .execute(&mut *tx)
            .await?;
        if before != after {
            crate::audit::change("power_status", before.as_str().into(), after.as_str().into());
        }
        tx.commit().await
    }

    /// Every switch or PDU reached over a real protocol (not `fake`), with its
    /// access data: what the port poller reads.
    pub async fn polled_devices(&self, kind: DeviceKind) -> Result<Vec<PolledDevice>> {
        let model = if kind == DeviceKind::Pdu { "model" } else { "'' AS model" };
        let sql = format!(
            "SELECT id, name, ip, protocol, {model}, snmp AS secret, location_id FROM {} WHERE protocol <> 'fake' ORDER BY id",
            kind.table()
        );
        let rows: Vec<PolledDevice> = sqlx::query_as(AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        let column = crate::seal::snmp_column(kind.table());
        rows.into_iter()
            .map(|mut d| {
                d.secret = self.open(&column, &d.secret)?;
                Ok(d)
            })
            .collect()
    }

    /// Records the statuses a device reported for its ports (by index); writes
    /// only the ports whose statuses changed and returns how many did. Ports the
    /// device did not report are left as they are.
    pub async fn set_port_states(&self, kind: DeviceKind, device_id: i64, states: &[PortStates]) -> Result<usize> {
        let read = match kind {
            DeviceKind::Switch => "SELECT idx, admin_status, oper_status FROM switch_ports WHERE switch_id = $1",
            DeviceKind::Pdu => {
                "SELECT idx, power_status AS admin_status, power_status AS oper_status FROM pdu_ports WHERE pdu_id = $1"
            }
        };
        let now: Vec<PortStates> = sqlx::query_as(read).bind(device_id).fetch_all(self.pool()).await?;
        let now: std::collections::HashMap<i64, &PortStates> = now.iter().map(|p| (p.idx, p)).collect();
        let changed: Vec<&PortStates> = states.iter().filter(|s| now.get(&s.idx).is_some_and(|n| *n != *s)).collect();
        if changed.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write().await?;
        for s in &changed {
            let q = match kind {
                DeviceKind::Switch => sqlx::query(
                    "UPDATE switch_ports SET admin_status = $1, oper_status = $2 WHERE switch_id = $3 AND idx = $4",
                )
                .bind(s.admin_status.clone())
                .bind(s.oper_status.clone()),
                DeviceKind::Pdu => sqlx::query("UPDATE pdu_ports SET power_status = $1 WHERE pdu_id = $2 AND idx = $3")
                    .bind(s.oper_status.clone()),
            };
            q.bind(device_id).bind(s.idx).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(changed.len())
    }

    // --- OS templates

    pub async fn create_os_template(
        &self,
        name: &str,
        kind: TemplateType,
        tags: &str,
        efi: bool,
        image: Option<&OsImage>,
        installer: Option<&OsInstaller>,
    ) -> Result<i64> {
        let mut tx = self.write().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO os_templates (name, type, tags, efi, image_url, image_sha256, installer, installer_kernel, \
             installer_initrd, installer_template) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(name.to_owned())
        .bind(kind.as_str())
        .bind(tags.to_owned())
        .bind(i64::from(efi))
        .bind(image.map(|i| i.url.clone()))
        .bind(image.map(|i| i.sha256.clone()))
        .bind(installer.map(|i| i.kind.clone()))
        .bind(installer.map(|i| i.kernel.clone()))
        .bind(installer.map(|i| i.initrd.clone()))
        .bind(installer.and_then(|i| i.template.clone()))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_constraint(e, || format!("OS template '{name}' exists")))?;
        crate::audit::set_target("os_template", id);
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_os_templates(&self, q: &ListQuery) -> Result<Page<OsTemplateRow>> {
        self.fetch_page(&OS_TEMPLATE_LIST, q, &[]).await
    }

    pub async fn get_os_template(&self, id: i64) -> Result<OsTemplateRow> {
        self.get_one(&OS_TEMPLATE_LIST, "id", "os_template", id).await
    }

    pub async fn update_os_template(
        &self,
        id: i64,
        name: Option<&str>,
        tags: Option<&str>,
        efi: Option<bool>,
        image: Option<Option<&OsImage>>,
        installer: Option<Option<&OsInstaller>>,
    ) -> Result<()> {
        let mut p = Patch::new("os_templates");
        if let Some(i) = image {
            p.set("image_url", i.map(|i| i.url.clone()).into());
            p.set("image_sha256", i.map(|i| i.sha256.clone()).into());
        }
        if let Some(i) = installer {
            p.set("installer", i.map(|i| i.kind.clone()).into());
            p.set("installer_kernel", i.map(|i| i.kernel.clone()).into());
            p.set("installer_initrd", i.map(|i| i.initrd.clone()).into());
            p.set("installer_template", i.and_then(|i| i.template.clone()).into());
        }
        if let Some(v) = name {
            p.set("name", v.into());
        }
        if let Some(v) = tags {
            p.set("tags", v.into());
        }
        if let Some(v) = efi {
            p.set("efi", v.into());
        }
        self.apply_patch(p, "os_template", id).await
    }

    pub async fn delete_os_template(&self, id: i64) -> Result<()> {
        self.delete_row("os_templates", "os_template", id).await
    }
}

async fn upsert_ports(
    tx: &mut crate::audit::Tx<'_>,
    kind: DeviceKind,
    device_id: i64,
    ports: &[PortReport],
) -> Result<()> {
    for p in ports {
        match kind {
            DeviceKind::Switch => {
                sqlx::query(
                    "INSERT INTO switch_ports (switch_id, idx, name, description, alias, admin_status, oper_status, \
                     speed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (switch_id, idx) DO UPDATE SET \
                     name = excluded.name, description = excluded.description, alias = excluded.alias, \
                     admin_status = excluded.admin_status, oper_status = excluded.oper_status, speed = excluded.speed",
                )
                .bind(device_id)
                .bind(p.idx)
                .bind(p.name.clone())
                .bind(p.description.clone())
                .bind(p.alias.clone())
                .bind(p.admin_status.clone())
                .bind(p.oper_status.clone())
                .bind(p.speed)
                .execute(&mut **tx)
                .await?;
            }
            DeviceKind::Pdu => {
                sqlx::query(
                    "INSERT INTO pdu_ports (pdu_id, idx, name, power_status) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (pdu_id, idx) DO UPDATE SET name = excluded.name, power_status = excluded.power_status",
                )
                .bind(device_id)
                .bind(p.idx)
                .bind(p.name.clone())
                .bind(p.oper_status.clone())
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(())
}
