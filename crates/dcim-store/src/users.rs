//! Users: accounts keyed by e-mail, with a role and a password hash.

use dcim_core::query::ListQuery;
use dcim_core::{Email, Role};
use sqlx::{AssertSqlSafe, FromRow};

use crate::ids::{Flag, UserId};
use crate::list::{Field, FieldType, ListSpec, Page, Patch};
use crate::{Result, Store, StoreError, now};

/// A user as stored, with the number of servers it owns.
#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: UserId,
    pub email: String,
    pub full_name: String,
    pub phone_number: String,
    pub role: Role,
    #[sqlx(try_from = "Flag")]
    pub blocked: bool,
    pub vlans_per_user: i64,
    pub server_count: i64,
    pub uuid: Option<String>,
    pub lang: String,
    pub timezone: String,
    /// On while two-factor authentication is on.
    #[sqlx(try_from = "Flag")]
    pub two_factor: bool,
}

/// What a login needs to check.
#[derive(Debug, Clone, FromRow)]
pub struct Credentials {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    #[sqlx(try_from = "Flag")]
    pub blocked: bool,
    pub password_hash: String,
    /// On while two-factor authentication is on: a login then needs a code too.
    #[sqlx(try_from = "Flag")]
    pub two_factor: bool,
}

/// A new account; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub password_hash: String,
    pub role: Role,
    pub full_name: String,
    pub phone_number: String,
    pub vlans_per_user: i64,
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<Email>,
    pub password_hash: Option<String>,
    pub role: Option<Role>,
    pub full_name: Option<String>,
    pub phone_number: Option<String>,
    pub vlans_per_user: Option<i64>,
    pub blocked: Option<bool>,
    pub lang: Option<String>,
    pub timezone: Option<String>,
    /// The session a password change leaves open: the caller's own, when it changes
    /// its own password (0: none).
    pub keep_session: i64,
}

pub const USER_LIST: ListSpec = ListSpec {
    select: "SELECT u.id, u.email, u.full_name, u.phone_number, u.role, u.blocked, u.vlans_per_user, \
             (SELECT COUNT(*) FROM servers s WHERE s.owner_id = u.id) AS server_count, u.uuid, u.lang, u.timezone, \
             CASE WHEN u.totp_secret IS NULL THEN 0 ELSE 1 END AS two_factor FROM users u",
    from: "users u",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("id", "u.id", FieldType::Int),
        Field::new("email", "u.email", FieldType::Text),
        Field::new("full_name", "u.full_name", FieldType::Text),
        Field::new("phone_number", "u.phone_number", FieldType::Text),
        Field::new("roles", "u.role", FieldType::Text),
        Field::new("role", "u.role", FieldType::Text),
        Field::new("blocked", "u.blocked", FieldType::Bool),
        Field::new("vlans_per_user", "u.vlans_per_user", FieldType::Int),
        Field::new("server_count", "(SELECT COUNT(*) FROM servers s WHERE s.owner_id = u.id)", FieldType::Int),
    ],
    tiebreak: "u.id ASC",
};

impl Store {
    pub async fn create_user(&self, u: &NewUser) -> Result<UserId> {
        let mut tx = self.write().await?;
        let email = u.email.as_str().to_owned();
        let (id,): (UserId,) = sqlx::query_as(
            "INSERT INTO users (email, full_name, phone_number, password_hash, role, vlans_per_user, created_at, uuid) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(email.clone())
        .bind(u.full_name.clone())
        .bind(u.phone_number.clone())
        .bind(u.password_hash.clone())
        .bind(u.role.as_str())
        .bind(u.vlans_per_user)
        .bind(now())
        .bind(uuid::Uuid::new_v4().to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_constraint(e, || format!("a user with e-mail {email} exists")))?;
        crate::audit::set_target("user", id.get());
        let created = serde_json::json!({"user": id, "email": email, "role": u.role.as_str()});
        crate::webhooks::emit(&mut tx, "user.created", None, created).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_users(&self, q: &ListQuery) -> Result<Page<UserRow>> {
        self.fetch_page(&USER_LIST, q, &[]).await
    }

    pub async fn get_user(&self, id: UserId) -> Result<UserRow> {
        let sql = format!("{} WHERE u.id = $1", USER_LIST.select);
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("user", id))
    }

    pub async fn find_user_id_by_email(&self, email: &str) -> Result<Option<UserId>> {
        let row: Option<(UserId,)> = sqlx::query_as("SELECT id FROM users WHERE email = $1")
            .bind(email.trim().to_ascii_lowercase())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.0))
    }

    pub async fn credentials_by_email(&self, email: &str) -> Result<Option<Credentials>> {
        Ok(sqlx::query_as(
            "SELECT id, email, role, blocked, password_hash, \
             CASE WHEN totp_secret IS NULL THEN 0 ELSE 1 END AS two_factor FROM users WHERE email = $1",
        )
        .bind(email.trim().to_ascii_lowercase())
        .fetch_optional(self.pool())
        .await?)
    }

    /// The password hash of a user, for checking its current password.
    pub async fn password_hash(&self, id: UserId) -> Result<String> {
        let row: Option<(String,)> = sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.0).ok_or_else(|| StoreError::not_found("user", id))
    }

    /// Sets a user's password and ends its sessions but `keep_session` (the session that
    /// changed its own password; 0 keeps none), in one transaction.
    pub async fn set_password(&self, id: UserId, password_hash: &str, keep_session: i64) -> Result<()> {
        let mut tx = self.write().await?;
        let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash.to_owned())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("user", id));
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(id)
            .bind(keep_session)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn update_user(&self, id: UserId, p: &UserPatch) -> Result<()> {
        let mut u = Patch::new("users");
        if let Some(e) = &p.email {
            u.set("email", e.as_str().into());
        }
        if let Some(h) = &p.password_hash {
            u.set("password_hash", h.as_str().into());
        }
        if let Some(r) = p.role {
            u.set("role", r.as_str().into());
        }
        if let Some(v) = &p.full_name {
            u.set("full_name", v.as_str().into());
        }
        if let Some(v) = &p.phone_number {
            u.set("phone_number", v.as_str().into());
        }
        if let Some(v) = p.vlans_per_user {
            u.set("vlans_per_user", v.into());
        }
        if let Some(b) = p.blocked {
            u.set("blocked", b.into());
        }
        if let Some(v) = &p.lang {
            u.set("lang", v.as_str().into());
        }
        if let Some(v) = &p.timezone {
            u.set("timezone", v.as_str().into());
        }
        if u.is_empty() {
            return self.get_user(id).await.map(|_| ());
        }
        let mut tx = self.write().await?;
        let was: Option<(i64, String)> =
            sqlx::query_as("SELECT blocked, email FROM users WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
        let Some((was_blocked, email)) = was else { return Err(StoreError::not_found("user", id)) };
        u.execute_in(&mut tx, id.get())
            .await
            .map_err(|e| StoreError::conflict_on_constraint(e, || "that e-mail belongs to another user".into()))?;
        if p.blocked == Some(true) || p.password_hash.is_some() {
            // A blocked user or a changed password ends every open session (but the
            // one of a user who changed its own password).
            let keep = if p.blocked == Some(true) { 0 } else { p.keep_session };
            sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
                .bind(id)
                .bind(keep)
                .execute(&mut *tx)
                .await?;
        }
        if p.blocked == Some(true) && was_blocked == 0 {
            crate::webhooks::emit(&mut tx, "user.blocked", None, serde_json::json!({"user": id, "email": email}))
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a user that owns no server and that no service has locked. The checks
    /// and the delete are one statement, so a server assigned meanwhile cannot be left
    /// with a dangling owner.
    pub async fn delete_user(&self, id: UserId) -> Result<()> {
        let mut tx = self.write().await?;
        let res = sqlx::query(
            "DELETE FROM users WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM servers WHERE owner_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM user_locks WHERE user_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_constraint(e, || format!("user {id} still owns servers")))?;
        if res.rows_affected() == 1 {
            return tx.commit().await;
        }
        drop(tx);
        let user = self.get_user(id).await?;
        if user.server_count > 0 {
            return Err(StoreError::Conflict(format!(
                "user {id} owns {} server(s); release them first",
                user.server_count
            )));
        }
        let services: Vec<String> = self.user_locks(id).await?.into_iter().map(|l| l.service).collect();
        Err(StoreError::Conflict(format!("user {id} is locked by {}; unlock it first", services.join(", "))))
    }
}
