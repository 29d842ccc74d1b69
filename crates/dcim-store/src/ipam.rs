//! IP address management: networks, pools of ranges, and addresses given to servers.
//!
//! No address is handed out twice because `ips` has a unique key on
//! (network, address): every allocation is an `INSERT` that the database refuses
//! for a taken address. Finding a free one never scans the used addresses: each
//! pool range (and each network, for network-wide allocation) has a cursor that
//! one atomic `UPDATE ... RETURNING` moves on, so concurrent allocators get
//! different candidates; released addresses go to `ip_free` and are offered first.

use dcim_core::query::ListQuery;
use dcim_core::{IpPurpose, IpStatus};
use sqlx::{AssertSqlSafe, FromRow};

use crate::ids::IpId;
use crate::list::{Bind, Field, FieldType, ListSpec, Page, Scope};
use crate::{Result, Store, StoreError, now};

#[derive(Debug, Clone, FromRow)]
pub struct IpnetRow {
    pub id: i64,
    pub name: String,
    pub family: i64,
    pub prefix: i64,
    pub first_key: String,
    pub last_key: String,
    pub gateway: String,
    pub vlan: String,
    pub note: String,
    pub userspace: i64,
    pub using_ip: i64,
    pub need_reserve: i64,
    /// Networks of the userspace inside this one: a container when more than 0.
    pub subnets: i64,
    /// The smallest network of the userspace this one lies inside.
    pub parent: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewIpnet {
    pub name: String,
    pub family: i64,
    pub prefix: i64,
    pub first_key: String,
    pub last_key: String,
    pub gateway: String,
    pub vlan: String,
    pub note: String,
    pub userspace: i64,
    pub need_reserve: bool,
}

#[derive(Debug, Clone, FromRow)]
pub struct PoolRow {
    pub id: i64,
    pub name: String,
    pub note: String,
    pub is_public: i64,
    pub userspace: i64,
    pub using_ipv4: i64,
    pub using_ipv6: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct RangeRow {
    pub id: i64,
    pub pool_id: i64,
    pub ipnet_id: i64,
    pub start_key: String,
    pub end_key: String,
    pub family: i64,
    pub net_name: String,
    pub gateway: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct IpRow {
    pub id: i64,
    pub ipnet_id: i64,
    pub pool_id: Option<i64>,
    pub server_id: Option<crate::ids::ServerId>,
    pub server_name: Option<String>,
    pub name: String,
    pub addr_key: String,
    pub family: i64,
    pub domain: String,
    pub status: IpStatus,
    pub status_info: String,
    pub network: String,
    pub gateway: String,
    pub purpose: IpPurpose,
    pub range_id: Option<i64>,
    /// IPmanager's status of the address (`busy`, `special`, ...).
    pub ipm_status: String,
    pub note: String,
    pub locked: i64,
    pub userspace: i64,
}

/// Where a next-free address comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    Pool(i64),
    /// A pool, its ranges in this network first.
    PoolPreferring(i64, i64),
    Network(i64),
}

/// Which address to take.
#[derive(Debug, Clone, Copy)]
pub enum Take<'a> {
    /// This one (taken already: a conflict).
    Given(Place<'a>),
    /// The next free one.
    Next(Source),
}

/// An address's place: its network, pool and range, and its key.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub ipnet_id: i64,
    pub pool_id: Option<i64>,
    pub range_id: Option<i64>,
    pub key: &'a str,
}

/// An address taken: its row, network and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub id: IpId,
    pub ipnet_id: i64,
    pub name: String,
}

/// A new address row: a server's (status `allocating`), or one IPmanager gives out
/// without a server (purpose `ipmgr`, status `ok`).
#[derive(Debug, Clone)]
pub struct NewIp {
    pub server_id: Option<crate::ids::ServerId>,
    pub family: i64,
    pub domain: String,
    /// `server`, `ipmi` for the server's BMC, or `ipmgr`.
    pub purpose: IpPurpose,
    /// IPmanager's status: `busy` unless given.
    pub ipm_status: String,
    pub note: String,
}

impl NewIp {
    /// An address for server `server_id` (`purpose` `server` or `ipmi`).
    pub fn for_server(server_id: crate::ids::ServerId, family: i64, domain: String, purpose: IpPurpose) -> NewIp {
        NewIp { server_id: Some(server_id), family, domain, purpose, ipm_status: "busy".into(), note: String::new() }
    }
}

/// SQL: how many networks of its userspace lie inside network `n` (more than 0: `n` is
/// a container). One definition for every statement that asks.
#[macro_export]
#[doc(hidden)]
macro_rules! subnets_of_n {
    () => {
        "(SELECT COUNT(*) FROM ipnets c WHERE c.userspace = n.userspace AND c.family = n.family \
         AND c.id <> n.id AND c.first_key >= n.first_key AND c.last_key <= n.last_key)"
    };
}

pub const IPNET_LIST: ListSpec = ListSpec {
    select: concat!(
        "SELECT n.id, n.name, n.family, n.prefix, n.first_key, n.last_key, n.gateway, n.vlan, n.note, \
         n.userspace, (SELECT COUNT(*) FROM ips i WHERE i.ipnet_id = n.id) AS using_ip, n.need_reserve, ",
        subnets_of_n!(),
        " AS subnets, (SELECT p.id FROM ipnets p WHERE p.userspace = n.userspace AND p.family = n.family AND p.id <> n.id \
              AND p.first_key <= n.first_key AND p.last_key >= n.last_key ORDER BY p.prefix DESC LIMIT 1) AS parent \
         FROM ipnets n"
    ),
    from: "ipnets n",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("id", "n.id", FieldType::Int),
        Field::new("name", "n.name", FieldType::Text),
        Field::new("family", "n.family", FieldType::Int),
        Field::new("mask", "n.prefix", FieldType::Int),
        Field::new("gateway", "n.gateway", FieldType::Text),
        Field::new("vlan", "n.vlan", FieldType::Text),
        Field::new("note", "n.note", FieldType::Text),
        Field::new("userspace", "n.userspace", FieldType::Int),
    ],
    tiebreak: "n.id ASC",
};

pub const POOL_LIST: ListSpec = ListSpec {
    select: "SELECT p.id, p.name, p.note, p.is_public, p.userspace, \
             (SELECT COUNT(*) FROM ips i WHERE i.pool_id = p.id AND i.family = 2) AS using_ipv4, \
             (SELECT COUNT(*) FROM ips i WHERE i.pool_id = p.id AND i.family = 10) AS using_ipv6 FROM ippools p",
    from: "ippools p",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("id", "p.id", FieldType::Int),
        Field::new("name", "p.name", FieldType::Text),
        Field::new("note", "p.note", FieldType::Text),
        Field::new("is_public", "p.is_public", FieldType::Bool),
        Field::new("userspace", "p.userspace", FieldType::Int),
    ],
    tiebreak: "p.id ASC",
};

pub const IP_LIST: ListSpec = ListSpec {
    select: "SELECT i.id, i.ipnet_id, i.pool_id, i.server_id, s.name AS server_name, i.name, i.addr_key, i.family, \
             i.domain, i.status, i.status_info, n.name AS network, n.gateway, i.purpose, i.range_id, i.ipm_status, \
             i.note, i.locked, n.userspace FROM ips i \
             JOIN ipnets n ON n.id = i.ipnet_id LEFT JOIN servers s ON s.id = i.server_id",
    from: "ips i JOIN ipnets n ON n.id = i.ipnet_id LEFT JOIN servers s ON s.id = i.server_id",
    count_all_from: Some("ips i"),
    facets: None,
    fields: &[
        Field::new("id", "i.id", FieldType::Int),
        Field::new("name", "i.name", FieldType::Text),
        Field::new("family", "i.family", FieldType::Int),
        Field::new("domain", "i.domain", FieldType::Text),
        Field::new("status", "i.status", FieldType::Text),
        Field::new("server", "i.server_id", FieldType::Int),
        Field::new("ipnet", "i.ipnet_id", FieldType::Int),
        Field::new("pool", "i.pool_id", FieldType::Int),
        Field::new("network", "n.name", FieldType::Text),
        Field::new("purpose", "i.purpose", FieldType::Text),
        // IPmanager's names for the same and its own fields (`/ip/v3/ip`).
        Field::new("ip_addr", "i.name", FieldType::Text),
        Field::new("ippool", "i.pool_id", FieldType::Int),
        Field::new("ipnet_name", "n.name", FieldType::Text),
        Field::new("range", "i.range_id", FieldType::Int),
        Field::new("userspace", "n.userspace", FieldType::Int),
        Field::new("note", "i.note", FieldType::Text),
        Field::new("locked", "i.locked", FieldType::Bool),
        Field::new("ipm_status", "i.ipm_status", FieldType::Text),
    ],
    tiebreak: "i.family ASC, i.addr_key ASC",
};

const IPNET_PLAIN: &str = concat!(
    "SELECT n.id, n.name, n.family, n.prefix, n.first_key, n.last_key, n.gateway, n.vlan, \
     n.note, n.userspace, 0 AS using_ip, n.need_reserve, ",
    subnets_of_n!(),
    " AS subnets, CAST(NULL AS BIGINT) AS parent FROM ipnets n ORDER BY n.id"
);

const RANGE_SELECT: &str = "SELECT r.id, r.pool_id, r.ipnet_id, r.start_key, r.end_key, n.family, n.name AS net_name, \
     n.gateway FROM ippool_ranges r JOIN ipnets n ON n.id = r.ipnet_id";

/// Turns a key and an offset into the candidate's key, `None` past `end`.
fn offset_key(family: i64, start: &str, end: &str, off: i64) -> Option<String> {
    let s = u128::from_str_radix(start, 16).ok()?;
    let e = u128::from_str_radix(end, 16).ok()?;
    let n = s.checked_add(u128::try_from(off).ok()?)?;
    (n <= e).then(|| if family == 2 { format!("{n:08x}") } else { format!("{n:032x}") })
}

/// Largest cursor offset a range allows (offsets are 64-bit).
fn max_offset(start: &str, end: &str) -> i64 {
    let s = u128::from_str_radix(start, 16).unwrap_or(0);
    let e = u128::from_str_radix(end, 16).unwrap_or(0);
    i64::try_from(e.saturating_sub(s)).unwrap_or(i64::MAX - 1)
}

impl Store {
    /// Adds a network to a userspace. Networks of one userspace may nest but not
    /// otherwise overlap: a network inside another divides it (the outer one becomes a
    /// container, which holds no address or pool range of its own, so it must have none
    /// yet), and one around others contains them. Creations in one userspace run one
    /// after the other (the userspace's row is their lock).
    pub async fn create_ipnet(&self, n: &NewIpnet) -> Result<i64> {
        let mut tx = self.write().await?;
        let locked =
            sqlx::query("UPDATE userspaces SET note = note WHERE id = $1").bind(n.userspace).execute(&mut *tx).await?;
        if locked.rows_affected() == 0 {
            return Err(StoreError::not_found("userspace", n.userspace));
        }
        type Overlap = (i64, String, String, String, i64, i64);
        let overlaps: Vec<Overlap> = sqlx::query_as(
            "SELECT n.id, n.name, n.first_key, n.last_key, (SELECT COUNT(*) FROM ips i WHERE i.ipnet_id = n.id), \
             (SELECT COUNT(*) FROM ippool_ranges r WHERE r.ipnet_id = n.id) FROM ipnets n \
             WHERE n.userspace = $1 AND n.family = $2 AND n.first_key <= $3 AND n.last_key >= $4 ORDER BY n.id",
        )
        .bind(n.userspace)
        .bind(n.family)
        .bind(n.last_key.clone())
        .bind(n.first_key.clone())
        .fetch_all(&mut *tx)
        .await?;
        for (id, name, first, last, used, ranges) in overlaps {
            let around = first <= n.first_key && last >= n.last_key;
            let inside = first >= n.first_key && last <= n.last_key;
            if around && inside {
                return Err(StoreError::Conflict(format!("network {} exists (id {id})", n.name)));
            }
            if around && (used > 0 || ranges > 0) {
                return Err(StoreError::Conflict(format!(
                    "{} lies inside network {id} ({name}), which holds {used} address(es) and {ranges} pool \
                     range(s): a network in use is not divided",
                    n.name
                )));
            }
            if !around && !inside {
                return Err(StoreError::Conflict(format!("{} overlaps network {id} ({name})", n.name)));
            }
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO ipnets (name, family, prefix, first_key, last_key, gateway, vlan, note, userspace, need_reserve) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(n.name.clone())
        .bind(n.family)
        .bind(n.prefix)
        .bind(n.first_key.clone())
        .bind(n.last_key.clone())
        .bind(n.gateway.clone())
        .bind(n.vlan.clone())
        .bind(n.note.clone())
        .bind(n.userspace)
        .bind(i64::from(n.need_reserve))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_constraint(e, || format!("network {} exists", n.name)))?;
        crate::audit::set_target("ipnet", id);
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_ipnets(&self, q: &ListQuery) -> Result<Page<IpnetRow>> {
        self.fetch_page(&IPNET_LIST, q, &[]).await
    }

    /// Every network without usage counts (cheap): for checks on the allocation path.
    pub async fn ipnets_plain(&self) -> Result<Vec<IpnetRow>> {
        Ok(sqlx::query_as(IPNET_PLAIN).fetch_all(self.pool()).await?)
    }

    pub async fn get_ipnet(&self, id: i64) -> Result<IpnetRow> {
        let sql = format!("{} WHERE n.id = $1", IPNET_LIST.select);
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("ipnet", id))
    }

    pub async fn update_ipnet(
        &self,
        id: i64,
        gateway: Option<&str>,
        vlan: Option<&str>,
        note: Option<&str>,
        need_reserve: Option<bool>,
    ) -> Result<()> {
        let mut p = crate::list::Patch::new("ipnets");
        if let Some(v) = need_reserve {
            p.set("need_reserve", v.into());
        }
        if let Some(v) = gateway {
            p.set("gateway", v.into());
        }
        if let Some(v) = vlan {
            p.set("vlan", v.into());
        }
        if let Some(v) = note {
            p.set("note", v.into());
        }
        if p.is_empty() {
            return self.get_ipnet(id).await.map(|_| ());
        }
        if p.execute(self, id).await? == 0 {
            return Err(StoreError::not_found("ipnet", id));
        }
        Ok(())
    }

    /// Deletes a network no address and no pool range uses, and that holds no
    /// networks (a container goes after its subnetworks).
    pub async fn delete_ipnet(&self, id: i64) -> Result<()> {
        let mut tx = self.write().await?;
        let r = sqlx::query(concat!(
            "DELETE FROM ipnets WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM ips WHERE ipnet_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM ippool_ranges WHERE ipnet_id = $1) \
             AND (SELECT ",
            subnets_of_n!(),
            " FROM ipnets n WHERE n.id = $1) = 0"
        ))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 1 {
            return tx.commit().await;
        }
        drop(tx);
        let n = self.get_ipnet(id).await?;
        if n.subnets > 0 {
            return Err(StoreError::Conflict(format!(
                "network {} is a container of {} network(s); delete them first",
                n.name, n.subnets
            )));
        }
        Err(StoreError::Conflict(format!(
            "network {} is in use ({} address(es), or pool ranges); free them first",
            n.name, n.using_ip
        )))
    }

    /// Creates a pool with its ranges: (network id, start key, end key).
    pub async fn create_pool(
        &self,
        name: &str,
        note: &str,
        is_public: bool,
        userspace: i64,
        ranges: &[(i64, String, String)],
    ) -> Result<i64> {
        let mut tx = self.write().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO ippools (name, note, is_public, userspace) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name.to_owned())
        .bind(note.to_owned())
        .bind(i64::from(is_public))
        .bind(userspace)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_constraint(e, || format!("pool '{name}' exists")))?;
        for (net, start, end) in ranges {
            sqlx::query("INSERT INTO ippool_ranges (pool_id, ipnet_id, start_key, end_key) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(*net)
                .bind(start.clone())
                .bind(end.clone())
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict_on_constraint(e, || format!("network {net} not found")))?;
        }
        crate::audit::set_target("ippool", id);
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_pools(&self, q: &ListQuery) -> Result<Page<PoolRow>> {
        self.fetch_page(&POOL_LIST, q, &[]).await
    }

    pub async fn get_pool(&self, id: i64) -> Result<PoolRow> {
        let sql = format!("{} WHERE p.id = $1", POOL_LIST.select);
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("ippool", id))
    }

    /// Ranges of the given pools (all pools when `pool` is `None`).
    pub async fn pool_ranges(&self, pool: Option<i64>) -> Result<Vec<RangeRow>> {
        Ok(match pool {
            Some(p) => {
                sqlx::query_as(AssertSqlSafe(format!("{RANGE_SELECT} WHERE r.pool_id = $1 ORDER BY r.id")))
                    .bind(p)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query_as(AssertSqlSafe(format!("{RANGE_SELECT} ORDER BY r.id"))).fetch_all(self.pool()).await?
            }
        })
    }

    pub async fn update_pool(
        &self,
        id: i64,
        name: Option<&str>,
        note: Option<&str>,
        is_public: Option<bool>,
    ) -> Result<()> {
        let mut p = crate::list::Patch::new("ippools");
        if let Some(v) = name {
            p.set("name", v.into());
        }
        if let Some(v) = note {
            p.set("note", v.into());
        }
        if let Some(v) = is_public {
            p.set("is_public", v.into());
        }
        if p.is_empty() {
            return self.get_pool(id).await.map(|_| ());
        }
        let n = p
            .execute(self, id)
            .await
            .map_err(|e| StoreError::conflict_on_constraint(e, || "another pool has that name".into()))?;
        if n == 0 {
            return Err(StoreError::not_found("ippool", id));
        }
        Ok(())
    }

    /// Deletes a pool none of whose addresses is in use.
    pub async fn delete_pool(&self, id: i64) -> Result<()> {
        let mut tx = self.write().await?;
        let r = sqlx::query("DELETE FROM ippools WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM ips WHERE pool_id = $1)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 1 {
            return tx.commit().await;
        }
        drop(tx);
        let p = self.get_pool(id).await?;
        Err(StoreError::Conflict(format!(
            "pool {} has {} address(es) in use; free them first",
            p.name,
            p.using_ipv4 + p.using_ipv6
        )))
    }

    /// Inserts an address row (`allocating`, or `ok` for IPmanager's own), or `None`
    /// when the address is taken.
    async fn insert_ip(tx: &mut crate::audit::Tx<'_>, ip: &NewIp, at: &Place<'_>) -> Result<Option<i64>> {
        let addr = dcim_core::ip::from_key(ip.family, at.key).map(|a| a.to_string()).unwrap_or_default();
        let status = if ip.purpose == IpPurpose::Ipmgr { IpStatus::Ok } else { IpStatus::Allocating };
        let row: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO ips (ipnet_id, pool_id, range_id, server_id, name, addr_key, family, domain, created, purpose, \
             status, ipm_status, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(at.ipnet_id)
        .bind(at.pool_id)
        .bind(at.range_id)
        .bind(ip.server_id)
        .bind(addr)
        .bind(at.key.to_owned())
        .bind(ip.family)
        .bind(ip.domain.clone())
        .bind(now())
        .bind(ip.purpose.as_str())
        .bind(status.as_str().to_owned())
        .bind(ip.ipm_status.clone())
        .bind(ip.note.clone())
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| StoreError::conflict_on_constraint(e, || "the server was deleted".into()))?;
        let Some((id,)) = row else { return Ok(None) };
        record_history(tx, id, None).await?;
        crate::audit::set_target("ip", id);
        if let Some(server) = ip.server_id {
            crate::audit::set_server(server);
        }
        Ok(Some(id))
    }

    /// Gives a server a chosen address of network `ipnet_id` (inside `pool_id`'s
    /// range `range_id` when given). A taken address is a conflict.
    pub async fn allocate_given(
        &self,
        ip: &NewIp,
        ipnet_id: i64,
        pool_id: Option<i64>,
        range_id: Option<i64>,
        key: &str,
    ) -> Result<i64> {
        let take = Take::Given(Place { ipnet_id, pool_id, range_id, key });
        let mut tx = self.write().await?;
        let taken = Self::take_ip(&mut tx, ip, &take, |_| false).await?;
        tx.commit().await?;
        Ok(taken.id.get())
    }

    /// Gives a server the next free address of a pool or network. `reserved`
    /// says which addresses (network, broadcast, gateway) are never handed out.
    pub async fn allocate_next(&self, ip: &NewIp, source: Source, reserved: impl Fn(&str) -> bool) -> Result<i64> {
        let mut tx = self.write().await?;
        let taken = Self::take_ip(&mut tx, ip, &Take::Next(source), reserved).await?;
        tx.commit().await?;
        Ok(taken.id.get())
    }

    /// Takes an address in `tx`: the one given, or the next free one of a pool or
    /// network, never one `reserved` names.
    pub(crate) async fn take_ip(
        tx: &mut crate::audit::Tx<'_>,
        ip: &NewIp,
        take: &Take<'_>,
        reserved: impl Fn(&str) -> bool,
    ) -> Result<Taken> {
        let taken = |id: i64, at: &Place<'_>| Taken {
            id: IpId(id),
            ipnet_id: at.ipnet_id,
            name: dcim_core::ip::from_key(ip.family, at.key).map(|a| a.to_string()).unwrap_or_default(),
        };
        let source = match take {
            Take::Given(at) => {
                return match Self::insert_ip(tx, ip, at).await? {
                    Some(id) => Ok(taken(id, at)),
                    None => Err(StoreError::Conflict(format!("{} is already taken", taken(0, at).name))),
                };
            }
            Take::Next(source) => *source,
        };
        let (ranges, pool_id) = match source {
            Source::Pool(p) | Source::PoolPreferring(p, _) => {
                let prefer = match source {
                    Source::PoolPreferring(_, n) => n,
                    _ => 0,
                };
                let r: Vec<(i64, i64, String, String)> = sqlx::query_as(
                    "SELECT r.id, r.ipnet_id, r.start_key, r.end_key FROM ippool_ranges r \
                     JOIN ipnets n ON n.id = r.ipnet_id WHERE r.pool_id = $1 AND n.family = $2 \
                     ORDER BY CASE WHEN r.ipnet_id = $3 THEN 0 ELSE 1 END, r.id",
                )
                .bind(p)
                .bind(ip.family)
                .bind(prefer)
                .fetch_all(&mut **tx)
                .await?;
                (r.into_iter().map(|(id, net, s, e)| (Some(id), net, s, e)).collect::<Vec<_>>(), Some(p))
            }
            Source::Network(n) => {
                let r: Vec<(i64, String, String)> =
                    sqlx::query_as("SELECT id, first_key, last_key FROM ipnets WHERE id = $1 AND family = $2")
                        .bind(n)
                        .bind(ip.family)
                        .fetch_all(&mut **tx)
                        .await?;
                (r.into_iter().map(|(id, s, e)| (None, id, s, e)).collect(), None)
            }
        };
        for (range_id, net, start, end) in ranges {
            // A pool range's own free list and cursor, or the whole network's.
            let (free_key, cursor_table, owner) = match range_id {
                Some(r) => ("range_id", "ippool_ranges", r),
                None => ("ipnet_id", "ipnets", net),
            };
            // Released addresses first.
            let pop = format!(
                "DELETE FROM ip_free WHERE id = (SELECT id FROM ip_free WHERE {free_key} = $1 \
                 ORDER BY addr_key LIMIT 1) RETURNING addr_key"
            );
            loop {
                let freed: Option<(String,)> =
                    sqlx::query_as(AssertSqlSafe(pop.clone())).bind(owner).fetch_optional(&mut **tx).await?;
                let Some((key,)) = freed else { break };
                let at = Place { ipnet_id: net, pool_id, range_id, key: &key };
                if let Some(id) = Self::insert_ip(tx, ip, &at).await? {
                    return Ok(taken(id, &at));
                }
            }
            // Then the cursor: each call takes its own offset.
            let max = max_offset(&start, &end);
            let bump = format!(
                "UPDATE {cursor_table} SET next_offset = next_offset + 1 WHERE id = $1 AND next_offset <= $2 \
                 RETURNING next_offset - 1"
            );
            loop {
                let bumped: Option<(i64,)> =
                    sqlx::query_as(AssertSqlSafe(bump.clone())).bind(owner).bind(max).fetch_optional(&mut **tx).await?;
                let Some((off,)) = bumped else { break };
                let Some(key) = offset_key(ip.family, &start, &end, off) else { break };
                if reserved(&key) {
                    continue;
                }
                let at = Place { ipnet_id: net, pool_id, range_id, key: &key };
                if let Some(id) = Self::insert_ip(tx, ip, &at).await? {
                    return Ok(taken(id, &at));
                }
            }
        }
        let fam = dcim_core::ip::family_name(ip.family);
        Err(StoreError::Conflict(match source {
            Source::Pool(p) | Source::PoolPreferring(p, _) => format!("pool {p} has no free {fam} address"),
            Source::Network(n) => format!("network {n} has no free {fam} address"),
        }))
    }

    pub async fn list_ips(&self, q: &ListQuery, scopes: &[Scope]) -> Result<Page<IpRow>> {
        self.fetch_page(&IP_LIST, q, scopes).await
    }

    pub async fn get_ip(&self, id: i64) -> Result<IpRow> {
        let mut sql = crate::list::SqlBuf { text: format!("{} WHERE i.id = ", IP_LIST.select), binds: vec![] };
        sql.bind(Bind::Int(id));
        crate::list::bind_query_as(&sql.text, &sql.binds)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("ip", id))
    }

    /// Marks an address (e.g. `deleting`).
    pub async fn set_ip_status(&self, id: IpId, status: IpStatus, info: &str) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE ips SET status = $1, status_info = $2 WHERE id = $3")
            .bind(status.as_str().to_owned())
            .bind(info.to_owned())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// What the history keeps of an address, with its userspace and name.
pub(crate) async fn ip_snapshot(
    tx: &mut crate::audit::Tx<'_>,
    id: i64,
) -> std::result::Result<Option<(i64, String, serde_json::Value)>, sqlx::Error> {
    type Snap = (i64, String, String, Option<i64>, Option<i64>, String, String, i64, i64);
    let row: Option<Snap> = sqlx::query_as(
        "SELECT n.userspace, i.name, i.domain, i.server_id, i.pool_id, i.ipm_status, i.note, i.locked, i.ipnet_id \
         FROM ips i JOIN ipnets n ON n.id = i.ipnet_id WHERE i.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(us, name, domain, server, pool, status, note, locked, net)| {
        let v = serde_json::json!({
            "id": id, "name": name, "domain": domain, "server": server, "ippool": pool, "ipnet": net,
            "status": status, "note": note, "locked": locked != 0,
        });
        (us, name, v)
    }))
}

/// Writes a history record of address `id`: its state now against `old` (`None`: it
/// was just created). Deletion writes its own record (see [`release_ip`]).
pub(crate) async fn record_history(
    tx: &mut crate::audit::Tx<'_>,
    id: i64,
    old: Option<serde_json::Value>,
) -> std::result::Result<(), sqlx::Error> {
    let Some((us, name, new)) = ip_snapshot(tx, id).await? else { return Ok(()) };
    insert_history(tx, us, &name, Some(id), old, Some(new)).await
}

pub(crate) async fn insert_history(
    tx: &mut crate::audit::Tx<'_>,
    userspace: i64,
    name: &str,
    reference: Option<i64>,
    old: Option<serde_json::Value>,
    new: Option<serde_json::Value>,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO ip_history (userspace, name, reference, created_at, data) VALUES ($1, $2, $3, $4, $5)")
        .bind(userspace)
        .bind(name.to_owned())
        .bind(reference)
        .bind(now())
        .bind(history_data(old, new).to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// `{"old","new"}` of a history record; a side that does not exist (before a create,
/// after a delete) is left out.
fn history_data(old: Option<serde_json::Value>, new: Option<serde_json::Value>) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if let Some(o) = old {
        m.insert("old".into(), o);
    }
    if let Some(n) = new {
        m.insert("new".into(), n);
    }
    serde_json::Value::Object(m)
}

/// Deletes an address, offers it again, and clears it as a main address; the history
/// records it.
pub(crate) async fn release_ip(tx: &mut crate::audit::Tx<'_>, id: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO ip_free (ipnet_id, range_id, addr_key) SELECT i.ipnet_id, \
         (SELECT r.id FROM ippool_ranges r WHERE r.ipnet_id = i.ipnet_id AND r.start_key <= i.addr_key \
          AND r.end_key >= i.addr_key ORDER BY r.id LIMIT 1), i.addr_key FROM ips i WHERE i.id = $1 \
         ON CONFLICT (ipnet_id, addr_key) DO NOTHING",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    // Read after the first write: in SQLite a transaction that reads first may not
    // upgrade to a writer while another writes.
    if let Some((us, name, old)) = ip_snapshot(tx, id).await? {
        insert_history(tx, us, &name, Some(id), Some(old), None).await?;
    }
    sqlx::query("UPDATE servers SET main_ipv4 = NULL WHERE main_ipv4 = $1").bind(id).execute(&mut **tx).await?;
    sqlx::query("UPDATE servers SET main_ipv6 = NULL WHERE main_ipv6 = $1").bind(id).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM ips WHERE id = $1").bind(id).execute(&mut **tx).await?;
    Ok(())
}
