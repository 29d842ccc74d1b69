//! Remote sites: the `dcim site` processes that drive the devices of some locations
//! from inside their data center, their enrollment and credential, the state of their
//! link, and the queue of calls that travel to them.
//!
//! Secrets are kept as SHA-256 digests only (the enrollment secret and the credential
//! are random 256-bit tokens, so a digest is enough; the API makes and hashes them). A
//! call holds a device's credentials, so its body is sealed like every secret at rest;
//! it lives from the moment a driver call is made to the moment its answer is read, or
//! its deadline. Taking calls checks, in the same statement, that the site still
//! serves the call's location: a site never receives the credentials of a device
//! outside its locations, even from a process whose routes are a moment old.

use dcim_core::query::ListQuery;
use sqlx::FromRow;

use crate::list::{Field, FieldType, ListSpec, Page, Patch};
use crate::webhooks::now_ms;
use crate::{Result, Store, StoreError, now};

/// A site as shown (never a digest).
#[derive(Debug, Clone, FromRow)]
pub struct SiteRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub enrolled_at: Option<i64>,
    /// 1 while an enrollment secret waits to be exchanged.
    pub enrollment_pending: i64,
    pub enrollment_expires: Option<i64>,
    /// 1 while the site holds a credential (enrolled and not revoked).
    pub has_credential: i64,
    pub connected_since: Option<i64>,
    pub last_seen: Option<i64>,
    pub version: String,
    pub protocol: String,
    pub address: String,
    pub last_error: String,
    /// Calls taken or waiting, not yet answered.
    pub calls_in_flight: i64,
}

const SITE_SELECT: &str = "SELECT st.id, st.name, st.description, st.created_at, st.enrolled_at, \
    CASE WHEN st.enrollment_hash IS NULL THEN 0 ELSE 1 END AS enrollment_pending, st.enrollment_expires, \
    CASE WHEN st.credential_hash IS NULL THEN 0 ELSE 1 END AS has_credential, st.connected_since, st.last_seen, \
    st.version, st.protocol, st.address, st.last_error, \
    (SELECT COUNT(*) FROM site_calls c WHERE c.site_id = st.id AND c.answer IS NULL) AS calls_in_flight \
    FROM sites st";

pub const SITE_LIST: ListSpec = ListSpec {
    select: SITE_SELECT,
    from: "sites st",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("id", "st.id", FieldType::Int),
        Field::new("name", "st.name", FieldType::Text),
        Field::new("description", "st.description", FieldType::Text),
        Field::new("last_seen", "st.last_seen", FieldType::Int),
        Field::new("version", "st.version", FieldType::Text),
    ],
    tiebreak: "st.id ASC",
};

/// A new site: its name, the locations it serves, and its first enrollment secret's
/// digest with its expiry (unix seconds).
#[derive(Debug, Clone)]
pub struct NewSite {
    pub name: String,
    pub description: String,
    pub locations: Vec<i64>,
    pub enrollment_hash: String,
    pub enrollment_expires: i64,
}

/// Changes to a site; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SitePatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub locations: Option<Vec<i64>>,
}

/// A site a credential authenticates.
#[derive(Debug, Clone, FromRow)]
pub struct SiteAuth {
    pub id: i64,
    pub name: String,
    pub last_seen: Option<i64>,
    /// The name its process picked at its start, as it last said.
    pub instance: String,
}

/// A location a site serves, with what a central needs to route its calls.
#[derive(Debug, Clone, FromRow)]
pub struct SiteRoute {
    pub location_id: i64,
    pub site_id: i64,
    pub name: String,
    pub connected_since: Option<i64>,
    pub last_seen: Option<i64>,
    /// The site's process, as it last said (a new one restarted: see the migration).
    pub instance: String,
}

/// What a site says of itself when it polls.
#[derive(Debug, Clone, Copy)]
pub struct SiteSeen<'a> {
    pub version: &'a str,
    pub protocol: &'a str,
    /// The address it polled from.
    pub address: &'a str,
    /// Its process's name (kept when it says none).
    pub instance: Option<&'a str>,
    /// A problem it reports (kept when it says none).
    pub error: Option<&'a str>,
}

/// A call a site took: its id, operation and body (opened).
#[derive(Debug, Clone, FromRow)]
pub struct TakenCall {
    pub id: i64,
    pub op: String,
    pub body: String,
}

const SITE_CALL_BODY: &str = "site_calls.body";

fn taken_names(kind: &str) -> impl FnOnce() -> String + '_ {
    move || format!("a location is served by one site at most, and a site's name is unique ({kind})")
}

impl Store {
    pub async fn create_site(&self, s: &NewSite) -> Result<i64> {
        let mut tx = self.write().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO sites (name, description, enrollment_hash, enrollment_expires, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(s.name.clone())
        .bind(s.description.clone())
        .bind(s.enrollment_hash.clone())
        .bind(s.enrollment_expires)
        .bind(now())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_constraint(e, taken_names("name")))?;
        set_locations(&mut tx, id, &s.locations).await?;
        crate::audit::set_target("site", id);
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_sites(&self, q: &ListQuery) -> Result<Page<SiteRow>> {
        self.fetch_page(&SITE_LIST, q, &[]).await
    }

    pub async fn get_site(&self, id: i64) -> Result<SiteRow> {
        let sql = format!("{SITE_SELECT} WHERE st.id = $1");
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("site", id))
    }

    /// The locations each of `ids` serves, in order of location.
    pub async fn site_locations(&self, ids: &[i64]) -> Result<Vec<(i64, i64)>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT site_id, location_id FROM site_locations WHERE site_id IN ({}) ORDER BY location_id",
            list.join(", ")
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?)
    }

    pub async fn update_site(&self, id: i64, p: &SitePatch) -> Result<()> {
        let mut tx = self.write().await?;
        let mut u = Patch::new("sites");
        if let Some(v) = &p.name {
            u.set("name", v.as_str().into());
        }
        if let Some(v) = &p.description {
            u.set("description", v.as_str().into());
        }
        let found = if u.is_empty() {
            sqlx::query_as::<_, (i64,)>("SELECT id FROM sites WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some()
        } else {
            u.execute_in(&mut tx, id).await.map_err(|e| StoreError::conflict_on_constraint(e, taken_names("name")))? > 0
        };
        if !found {
            return Err(StoreError::not_found("site", id));
        }
        if let Some(locations) = &p.locations {
            sqlx::query("DELETE FROM site_locations WHERE site_id = $1").bind(id).execute(&mut *tx).await?;
            set_locations(&mut tx, id, locations).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a site: its credential stops working and its locations are reached
    /// directly again; its waiting calls go with it.
    pub async fn delete_site(&self, id: i64) -> Result<()> {
        let mut tx = self.write().await?;
        let r = sqlx::query("DELETE FROM sites WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("site", id));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Revokes a site's credential and any enrollment secret not yet exchanged; with
    /// `enrollment`, a new secret's digest and expiry take their place.
    pub async fn reset_site_credential(&self, id: i64, enrollment: Option<(&str, i64)>) -> Result<()> {
        let mut tx = self.write().await?;
        let r = sqlx::query(
            "UPDATE sites SET credential_hash = NULL, enrollment_hash = $1, enrollment_expires = $2, \
             connected_since = NULL WHERE id = $3",
        )
        .bind(enrollment.map(|(h, _)| h.to_owned()))
        .bind(enrollment.map(|(_, e)| e))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("site", id));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Exchanges an enrollment secret (its digest) for a credential (its digest), once
    /// and before the secret expires; the site it enrolls, or none.
    pub async fn enroll_site(&self, enrollment_hash: &str, credential_hash: &str) -> Result<Option<(i64, String)>> {
        let mut tx = self.write().await?;
        let row: Option<(i64, String)> = sqlx::query_as(
            "UPDATE sites SET credential_hash = $1, enrollment_hash = NULL, enrollment_expires = NULL, \
             enrolled_at = $2, connected_since = NULL WHERE enrollment_hash = $3 AND enrollment_expires >= $2 \
             RETURNING id, name",
        )
        .bind(credential_hash.to_owned())
        .bind(now())
        .bind(enrollment_hash.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((id, _)) = &row {
            crate::audit::set_target("site", *id);
        }
        tx.commit().await?;
        Ok(row)
    }

    /// The site holding this credential (its digest), if it is not revoked.
    pub async fn site_by_credential(&self, credential_hash: &str) -> Result<Option<SiteAuth>> {
        Ok(sqlx::query_as("SELECT id, name, last_seen, instance FROM sites WHERE credential_hash = $1")
            .bind(credential_hash.to_owned())
            .fetch_optional(self.pool())
            .await?)
    }

    /// Records a poll of the site's link: seen now, connected since now when it had not
    /// been seen for `stale_secs`, with what it says of itself.
    pub async fn site_seen(&self, id: i64, stale_secs: i64, seen: &SiteSeen<'_>) -> Result<()> {
        let SiteSeen { version, protocol, address, instance, error } = *seen;
        let t = now();
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE sites SET connected_since = CASE WHEN last_seen IS NULL OR last_seen < $1 \
             OR connected_since IS NULL THEN $2 ELSE connected_since END, last_seen = $2, version = $3, \
             protocol = $4, address = $5, last_error = COALESCE($6, last_error), \
             instance = COALESCE($7, instance) WHERE id = $8",
        )
        .bind(t - stale_secs)
        .bind(t)
        .bind(version.to_owned())
        .bind(protocol.to_owned())
        .bind(address.to_owned())
        .bind(error.map(str::to_owned))
        .bind(instance.map(str::to_owned))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records why a site was refused or what went wrong on its link.
    pub async fn site_error(&self, id: i64, error: &str) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE sites SET last_error = $1 WHERE id = $2")
            .bind(error.to_owned())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every location a site serves, with its site's link.
    pub async fn site_routes(&self) -> Result<Vec<SiteRoute>> {
        Ok(sqlx::query_as(
            "SELECT l.location_id, st.id AS site_id, st.name, st.connected_since, st.last_seen, st.instance \
             FROM site_locations l JOIN sites st ON st.id = l.site_id ORDER BY l.location_id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Queues a call for a site; its id. A call with a `key` already queued and not
    /// past its deadline (by a process that died waiting for it, or an attempt that
    /// gave up) is joined instead: its id.
    pub async fn queue_site_call(
        &self,
        site: i64,
        location: i64,
        op: &str,
        body: &str,
        deadline_ms: i64,
        key: Option<&str>,
    ) -> Result<i64> {
        let mut tx = self.write().await?;
        // A call under the key never answered in its time (the site lost it) is
        // queued anew. An unkeyed call (a read) has nothing to replace.
        if let Some(key) = key {
            sqlx::query("DELETE FROM site_calls WHERE call_key = $1 AND deadline <= $2 AND answer IS NULL")
                .bind(key.to_owned())
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        let inserted: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO site_calls (site_id, location_id, op, call_key, body, created, deadline) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (call_key) DO NOTHING RETURNING id",
        )
        .bind(site)
        .bind(location)
        .bind(op.to_owned())
        .bind(key.map(str::to_owned))
        .bind(self.seal(SITE_CALL_BODY, body))
        .bind(now_ms())
        .bind(deadline_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match inserted {
            Some((id,)) => id,
            None => {
                let (id,): (i64,) = sqlx::query_as("SELECT id FROM site_calls WHERE call_key = $1")
                    .bind(key.map(str::to_owned))
                    .fetch_one(&mut *tx)
                    .await?;
                id
            }
        };
        tx.commit().await?;
        Ok(id)
    }

    /// Takes up to `limit` waiting calls of a site, oldest first: only while the site
    /// holds `credential_hash` (a revoked site gets nothing from that moment), only
    /// calls for locations it serves now, and only before their deadline. Calls for a
    /// location it no longer serves are answered `refusal` instead.
    pub async fn take_site_calls(
        &self,
        site: i64,
        credential_hash: &str,
        limit: i64,
        refusal: &str,
    ) -> Result<Vec<TakenCall>> {
        // A read first: a poll looks every 100 ms and most looks find nothing.
        let waiting: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM site_calls WHERE site_id = $1 AND taken_at IS NULL AND answer IS NULL LIMIT 1",
        )
        .bind(site)
        .fetch_optional(self.pool())
        .await?;
        if waiting.is_none() {
            return Ok(vec![]);
        }
        let t = now_ms();
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE site_calls SET answer = $1, answered_at = $2 WHERE site_id = $3 AND taken_at IS NULL \
             AND answer IS NULL AND NOT EXISTS (SELECT 1 FROM site_locations l WHERE l.site_id = $3 \
             AND l.location_id = site_calls.location_id)",
        )
        .bind(refusal.to_owned())
        .bind(t)
        .bind(site)
        .execute(&mut *tx)
        .await?;
        let taken: Vec<TakenCall> = sqlx::query_as(
            "UPDATE site_calls SET taken_at = $1 WHERE id IN (SELECT c.id FROM site_calls c \
             JOIN site_locations l ON l.location_id = c.location_id AND l.site_id = c.site_id \
             JOIN sites st ON st.id = c.site_id AND st.credential_hash = $2 \
             WHERE c.site_id = $3 AND c.taken_at IS NULL AND c.answer IS NULL AND c.deadline > $1 \
             ORDER BY c.id LIMIT $4) AND taken_at IS NULL RETURNING id, op, body",
        )
        .bind(t)
        .bind(credential_hash.to_owned())
        .bind(site)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        taken
            .into_iter()
            .map(|mut c| {
                c.body = self.open(SITE_CALL_BODY, &c.body)?;
                Ok(c)
            })
            .collect()
    }

    /// Records a site's answer to a call it took; false when there is no such call of
    /// that site waiting for one (answered, expired, or another site's).
    pub async fn answer_site_call(&self, site: i64, id: i64, answer: &str) -> Result<bool> {
        Ok(!self.answer_site_calls(site, &[(id, answer.to_owned())]).await?.is_empty())
    }

    /// Records a site's answers in one transaction; the calls that took theirs (the
    /// others were answered already, expired, or are another site's).
    pub async fn answer_site_calls(&self, site: i64, answers: &[(i64, String)]) -> Result<Vec<i64>> {
        let mut tx = self.write().await?;
        let mut taken = vec![];
        let t = now_ms();
        for (id, answer) in answers {
            let r = sqlx::query(
                "UPDATE site_calls SET answer = $1, answered_at = $2 WHERE id = $3 AND site_id = $4 \
                 AND taken_at IS NOT NULL AND answer IS NULL",
            )
            .bind(answer.clone())
            .bind(t)
            .bind(*id)
            .bind(site)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 1 {
                taken.push(*id);
            }
        }
        tx.commit().await?;
        Ok(taken)
    }

    /// Which of these calls have an answer.
    pub async fn answered_site_calls(&self, ids: &[i64]) -> Result<Vec<i64>> {
        let mut out = vec![];
        for chunk in ids.chunks(500) {
            let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
            let sql = format!("SELECT id FROM site_calls WHERE id IN ({}) AND answer IS NOT NULL", list.join(", "));
            let rows: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
            out.extend(rows.into_iter().map(|r| r.0));
        }
        Ok(out)
    }

    /// A call's answer, once: the call is removed with it. None while it has none.
    pub async fn take_site_answer(&self, id: i64) -> Result<Option<String>> {
        // A read first: the caller looks every 100 ms and most looks find nothing.
        let answered: Option<(i64,)> = sqlx::query_as("SELECT id FROM site_calls WHERE id = $1 AND answer IS NOT NULL")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        if answered.is_none() {
            return Ok(None);
        }
        let mut tx = self.write().await?;
        let row: Option<(Option<String>,)> =
            sqlx::query_as("DELETE FROM site_calls WHERE id = $1 AND answer IS NOT NULL RETURNING answer")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(row.and_then(|r| r.0))
    }

    /// Forgets a call whose caller gave up, unless the site took it: then its answer
    /// is still awaited by the step's next attempt (same key), or purged.
    pub async fn drop_site_call(&self, id: i64) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM site_calls WHERE id = $1 AND (taken_at IS NULL OR call_key IS NULL)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets calls past their deadline by more than `grace_ms` (their callers gave up
    /// and died before they could forget them); how many.
    pub async fn purge_site_calls(&self, grace_ms: i64) -> Result<u64> {
        let mut tx = self.write().await?;
        let r = sqlx::query("DELETE FROM site_calls WHERE deadline < $1")
            .bind(now_ms() - grace_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }
}

async fn set_locations(tx: &mut crate::audit::Tx<'_>, site: i64, locations: &[i64]) -> Result<()> {
    for l in locations {
        sqlx::query("INSERT INTO site_locations (location_id, site_id) VALUES ($1, $2)")
            .bind(*l)
            .bind(site)
            .execute(&mut **tx)
            .await
            .map_err(|e| {
                StoreError::conflict_on_constraint(e, || {
                    format!("location {l} does not exist or is served by another site already")
                })
            })?;
    }
    Ok(())
}
