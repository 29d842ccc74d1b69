//! IPmanager 6's own objects beside the networks, pools and addresses of [`crate::ipam`]:
//! userspaces, pool ranges as objects of their own, addresses IPmanager gives out
//! without a server (edited, locked, deleted), and each address's history.

use dcim_core::query::ListQuery;
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::ipam::{ip_snapshot, record_history, release_ip};
use crate::list::{Field, FieldType, ListSpec, Page};
use crate::{Result, Store, StoreError, now};

#[derive(Debug, Clone, FromRow)]
pub struct UserspaceRow {
    pub id: i64,
    pub note: String,
    pub is_public: i64,
}

/// A pool range with its usage.
#[derive(Debug, Clone, FromRow)]
pub struct RangeInfo {
    pub id: i64,
    pub pool_id: i64,
    pub ipnet_id: i64,
    pub start_key: String,
    pub end_key: String,
    pub family: i64,
    pub net_name: String,
    pub gateway: String,
    pub using_ip: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct HistoryRow {
    pub id: i64,
    pub name: String,
    pub reference: Option<i64>,
    pub created_at: i64,
    pub data: String,
}

/// Changes to an address; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct IpPatch {
    pub domain: Option<String>,
    pub ipm_status: Option<String>,
    pub note: Option<String>,
    pub locked: Option<bool>,
}

pub const USERSPACE_LIST: ListSpec = ListSpec {
    select: "SELECT u.id, u.note, u.is_public FROM userspaces u",
    from: "userspaces u",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("id", "u.id", FieldType::Int),
        Field::new("note", "u.note", FieldType::Text),
        Field::new("is_public", "u.is_public", FieldType::Bool),
    ],
    tiebreak: "u.id ASC",
};

pub const RANGE_LIST: ListSpec = ListSpec {
    select: "SELECT r.id, r.pool_id, r.ipnet_id, r.start_key, r.end_key, n.family, n.name AS net_name, n.gateway, \
             (SELECT COUNT(*) FROM ips i WHERE i.range_id = r.id) AS using_ip \
             FROM ippool_ranges r JOIN ipnets n ON n.id = r.ipnet_id",
    from: "ippool_ranges r JOIN ipnets n ON n.id = r.ipnet_id",
    count_all_from: Some("ippool_ranges r"),
    facets: None,
    fields: &[
        Field::new("id", "r.id", FieldType::Int),
        Field::new("ippool", "r.pool_id", FieldType::Int),
        Field::new("ipnet", "r.ipnet_id", FieldType::Int),
        Field::new("family", "n.family", FieldType::Int),
    ],
    tiebreak: "r.id ASC",
};

impl Store {
    pub async fn list_userspaces(&self, q: &ListQuery) -> Result<Page<UserspaceRow>> {
        self.fetch_page(&USERSPACE_LIST, q, &[]).await
    }

    pub async fn get_userspace(&self, id: i64) -> Result<UserspaceRow> {
        sqlx::query_as("SELECT id, note, is_public FROM userspaces WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("userspace", id))
    }

    pub async fn create_userspace(&self, note: &str) -> Result<i64> {
        let mut tx = self.write().await?;
        let (id,): (i64,) =
            sqlx::query_as("INSERT INTO userspaces (note, is_public, created_at) VALUES ($1, 0, $2) RETURNING id")
                .bind(note.to_owned())
                .bind(now())
                .fetch_one(&mut *tx)
                .await?;
        crate::audit::set_target("userspace", id);
        tx.commit().await?;
        Ok(id)
    }

    pub async fn update_userspace(&self, id: i64, note: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let r = sqlx::query("UPDATE userspaces SET note = $1 WHERE id = $2")
            .bind(note.to_owned())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("userspace", id));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a userspace that holds no network or pool and serves no location; the
    /// public userspace 1 stays.
    pub async fn delete_userspace(&self, id: i64) -> Result<()> {
        if id == 1 {
            self.get_userspace(id).await?;
            return Err(StoreError::Conflict("userspace 1 is the public userspace and stays".into()));
        }
        let mut tx = self.write().await?;
        let r = sqlx::query(
            "DELETE FROM userspaces WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM ipnets WHERE userspace = $1) \
             AND NOT EXISTS (SELECT 1 FROM ippools WHERE userspace = $1) \
             AND NOT EXISTS (SELECT 1 FROM locations WHERE userspace = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 1 {
            return tx.commit().await;
        }
        drop(tx);
        self.get_userspace(id).await?;
        Err(StoreError::Conflict(format!(
            "userspace {id} still holds networks or pools, or serves a location; remove them first"
        )))
    }

    pub async fn list_ranges(&self, q: &ListQuery) -> Result<Page<RangeInfo>> {
        self.fetch_page(&RANGE_LIST, q, &[]).await
    }

    pub async fn get_range(&self, id: i64) -> Result<RangeInfo> {
        sqlx::query_as(AssertSqlSafe(format!("{} WHERE r.id = $1", RANGE_LIST.select)))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("range", id))
    }

    /// The smallest network of `userspace` (and `family`) that holds keys
    /// `start..=end`, and whether it is a container (holds networks).
    pub async fn network_holding(
        &self,
        userspace: i64,
        family: i64,
        start: &str,
        end: &str,
    ) -> Result<Option<(i64, String, bool)>> {
        let row: Option<(i64, String, i64)> = sqlx::query_as(concat!(
            "SELECT n.id, n.name, ",
            crate::subnets_of_n!(),
            " FROM ipnets n WHERE n.userspace = $1 AND n.family = $2 AND n.first_key <= $3 AND n.last_key >= $4 \
             ORDER BY n.prefix DESC LIMIT 1"
        ))
        .bind(userspace)
        .bind(family)
        .bind(start.to_owned())
        .bind(end.to_owned())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(id, name, subnets)| (id, name, subnets > 0)))
    }

    async fn range_overlap(
        &self,
        conn: &mut AnyConnection,
        ipnet: i64,
        start: &str,
        end: &str,
        except: i64,
    ) -> Result<()> {
        let other: Option<(i64, i64)> = sqlx::query_as(
            "SELECT id, pool_id FROM ippool_ranges WHERE ipnet_id = $1 AND start_key <= $2 AND end_key >= $3 \
             AND id <> $4 LIMIT 1",
        )
        .bind(ipnet)
        .bind(end.to_owned())
        .bind(start.to_owned())
        .bind(except)
        .fetch_optional(&mut *conn)
        .await?;
        match other {
            Some((id, pool)) => Err(StoreError::Conflict(format!("it overlaps range {id} of pool {pool}"))),
            None => Ok(()),
        }
    }

    /// Adds a range of keys `start..=end` of network `ipnet` to a pool; ranges of one
    /// network do not overlap.
    pub async fn create_range(&self, pool: i64, ipnet: i64, start: &str, end: &str) -> Result<i64> {
        let mut tx = self.write().await?;
        crate::audit::require_row(&mut tx, "ippools", "ippool", pool).await?;
        self.range_overlap(&mut tx, ipnet, start, end, 0).await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO ippool_ranges (pool_id, ipnet_id, start_key, end_key) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(pool)
        .bind(ipnet)
        .bind(start.to_owned())
        .bind(end.to_owned())
        .fetch_one(&mut *tx)
        .await?;
        crate::audit::set_target("range", id);
        tx.commit().await?;
        Ok(id)
    }

    /// Moves a range's bounds (within its network); refused while an address of the
    /// range would fall outside. Released addresses outside are forgotten and the
    /// cursor starts over.
    pub async fn update_range(&self, id: i64, ipnet: i64, start: &str, end: &str) -> Result<()> {
        let r = self.get_range(id).await?;
        if r.ipnet_id != ipnet {
            return Err(StoreError::Conflict(format!(
                "range {id} is in network {} ({}); a range cannot move to another network",
                r.ipnet_id, r.net_name
            )));
        }
        let mut tx = self.write().await?;
        self.range_overlap(&mut tx, ipnet, start, end, id).await?;
        sqlx::query("UPDATE ippool_ranges SET next_offset = next_offset WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let outside: Option<(String,)> = sqlx::query_as(
            "SELECT name FROM ips WHERE range_id = $1 AND (addr_key < $2 OR addr_key > $3) ORDER BY addr_key LIMIT 1",
        )
        .bind(id)
        .bind(start.to_owned())
        .bind(end.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((name,)) = outside {
            return Err(StoreError::Conflict(format!("{name} is in use and would fall outside the range")));
        }
        sqlx::query("UPDATE ippool_ranges SET start_key = $1, end_key = $2, next_offset = 0 WHERE id = $3")
            .bind(start.to_owned())
            .bind(end.to_owned())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM ip_free WHERE range_id = $1 AND (addr_key < $2 OR addr_key > $3)")
            .bind(id)
            .bind(start.to_owned())
            .bind(end.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a range none of whose addresses is in use.
    pub async fn delete_range(&self, id: i64) -> Result<()> {
        let mut tx = self.write().await?;
        let r = sqlx::query(
            "DELETE FROM ippool_ranges WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM ips WHERE range_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 1 {
            sqlx::query("DELETE FROM ip_free WHERE range_id = $1").bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            return Ok(());
        }
        drop(tx);
        let r = self.get_range(id).await?;
        Err(StoreError::Conflict(format!("range {id} has {} address(es) in use; free them first", r.using_ip)))
    }

    /// The pool range of `pool` in network `ipnet` that holds `key`, if any.
    pub async fn range_holding(&self, pool: i64, ipnet: i64, key: &str) -> Result<Option<i64>> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM ippool_ranges WHERE pool_id = $1 AND ipnet_id = $2 AND start_key <= $3 AND end_key >= $3 \
             ORDER BY id LIMIT 1",
        )
        .bind(pool)
        .bind(ipnet)
        .bind(key.to_owned())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.0))
    }

    /// Edits an address's domain, IPmanager status, note or lock, with a history record.
    pub async fn update_ipmgr_ip(&self, id: i64, p: &IpPatch) -> Result<()> {
        let mut tx = self.write().await?;
        // Write first (a no-op): in SQLite a transaction that reads first may not become
        // a writer while another writes.
        sqlx::query("UPDATE ips SET locked = locked WHERE id = $1").bind(id).execute(&mut *tx).await?;
        let Some((_, _, old)) = ip_snapshot(&mut tx, id).await? else {
            return Err(StoreError::not_found("ip", id));
        };
        let mut u = crate::list::Patch::new("ips");
        if let Some(v) = &p.domain {
            u.set("domain", v.as_str().into());
        }
        if let Some(v) = &p.ipm_status {
            u.set("ipm_status", v.as_str().into());
        }
        if let Some(v) = &p.note {
            u.set("note", v.as_str().into());
        }
        if let Some(v) = p.locked {
            u.set("locked", v.into());
        }
        if u.is_empty() {
            return Ok(());
        }
        u.execute_in(&mut tx, id).await?;
        record_history(&mut tx, id, Some(old)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes an address that no server holds and that is not locked; it is offered
    /// again, and the history records it.
    pub async fn delete_ipmgr_ip(&self, id: i64) -> Result<()> {
        let ip = self.get_ip(id).await?;
        if let Some(server) = ip.server_id {
            return Err(StoreError::Conflict(format!(
                "{} is given to server {server}; take it back with DELETE /dci/v3/server/{server}/ip/{id}",
                ip.name
            )));
        }
        let mut tx = self.write().await?;
        let r = sqlx::query("UPDATE ips SET status = 'deleting' WHERE id = $1 AND locked = 0 AND server_id IS NULL")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("{} is locked; unlock it first", ip.name)));
        }
        release_ip(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The history of an address of a userspace, oldest first.
    pub async fn ip_history(&self, userspace: i64, name: &str) -> Result<Vec<HistoryRow>> {
        Ok(sqlx::query_as(
            "SELECT id, name, reference, created_at, data FROM ip_history WHERE userspace = $1 AND name = $2 ORDER BY id",
        )
        .bind(userspace)
        .bind(name.to_owned())
        .fetch_all(self.pool())
        .await?)
    }
}
