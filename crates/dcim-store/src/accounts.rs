//! What Auth v4 keeps about an account beyond its login: the TOTP secret of
//! two-factor authentication and its reserve codes, public SSH keys, and blocking
//! dependencies (a service's "lock" that keeps a user from being deleted).
//!
//! TOTP codes are checked above this layer; here a code's time step is claimed with
//! one conditional `UPDATE`, so the same code cannot be used twice, even by two
//! processes at once. Reserve codes are stored as SHA-256 hashes and claimed by
//! `DELETE`.

use sqlx::FromRow;

use crate::ids::UserId;
use crate::{Result, Store, StoreError, now};

/// A public SSH key of a user.
#[derive(Debug, Clone, FromRow)]
pub struct SshKeyRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub ssh_pub_key: String,
}

/// A blocking dependency on a user.
#[derive(Debug, Clone, FromRow)]
pub struct LockRow {
    pub service: String,
    pub description: String,
}

impl Store {
    /// The user's TOTP secret (`None` while two-factor authentication is off) and the
    /// last time step a code was accepted for.
    pub async fn totp_state(&self, user_id: UserId) -> Result<(Option<String>, i64)> {
        let (secret, step): (Option<String>, i64) =
            sqlx::query_as("SELECT totp_secret, totp_last_step FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?
                .ok_or_else(|| StoreError::not_found("user", user_id))?;
        Ok((self.open_opt(crate::seal::TOTP_SECRET, secret)?, step))
    }

    /// Turns two-factor authentication on with `secret`, its first code accepted at
    /// `step`; every other session of the user ends (none was confirmed by a code),
    /// and old reserve codes go.
    pub async fn enable_totp(&self, user_id: UserId, secret: &str, step: i64, keep_session: i64) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE users SET totp_secret = $1, totp_last_step = $2 WHERE id = $3")
            .bind(self.seal(crate::seal::TOTP_SECRET, secret))
            .bind(step)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM user_reserve_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(user_id)
            .bind(keep_session)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Turns two-factor authentication off; false if it was not on. Sessions waiting
    /// for a code are confirmed: there is no code to ask for any more.
    pub async fn disable_totp(&self, user_id: UserId) -> Result<bool> {
        let mut tx = self.write().await?;
        let r = sqlx::query("UPDATE users SET totp_secret = NULL WHERE id = $1 AND totp_secret IS NOT NULL")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM user_reserve_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        sqlx::query("UPDATE sessions SET confirmed = 1 WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Claims TOTP time step `step` for the user: true only if no code of this or a
    /// later step was accepted before.
    pub async fn claim_totp_step(&self, user_id: UserId, step: i64) -> Result<bool> {
        let mut tx = self.write().await?;
        let r = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_secret IS NOT NULL AND totp_last_step < $1",
        )
        .bind(step)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Replaces the user's reserve codes with these hashes.
    pub async fn replace_reserve_codes(&self, user_id: UserId, hashes: &[String]) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM user_reserve_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        for h in hashes {
            sqlx::query("INSERT INTO user_reserve_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(h.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Uses up a reserve code; true if the user had it.
    pub async fn use_reserve_code(&self, user_id: UserId, hash: &str) -> Result<bool> {
        let mut tx = self.write().await?;
        let r = sqlx::query("DELETE FROM user_reserve_codes WHERE user_id = $1 AND code_hash = $2")
            .bind(user_id)
            .bind(hash.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn list_ssh_keys(&self, user_id: UserId) -> Result<Vec<SshKeyRow>> {
        Ok(sqlx::query_as("SELECT id, user_id, name, ssh_pub_key FROM user_ssh_keys WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// One key of the user; another user's key is not found.
    pub async fn get_ssh_key(&self, user_id: UserId, id: i64) -> Result<SshKeyRow> {
        sqlx::query_as("SELECT id, user_id, name, ssh_pub_key FROM user_ssh_keys WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("SSH key", id))
    }

    pub async fn create_ssh_key(&self, user_id: UserId, name: &str, key: &str) -> Result<i64> {
        let mut tx = self.write().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO user_ssh_keys (user_id, name, ssh_pub_key, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(user_id)
        .bind(name.to_owned())
        .bind(key.to_owned())
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
        crate::audit::set_target("ssh_key", id);
        tx.commit().await?;
        Ok(id)
    }

    pub async fn rename_ssh_key(&self, user_id: UserId, id: i64, name: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let r = sqlx::query("UPDATE user_ssh_keys SET name = $1 WHERE id = $2 AND user_id = $3")
            .bind(name.to_owned())
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("SSH key", id));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_ssh_key(&self, user_id: UserId, id: i64) -> Result<()> {
        let mut tx = self.write().await?;
        let r = sqlx::query("DELETE FROM user_ssh_keys WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("SSH key", id));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds (or re-describes) the blocking dependency of `service` on a user.
    pub async fn lock_user(&self, user_id: UserId, service: &str, description: &str) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO user_locks (user_id, service, description, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, service) DO UPDATE SET description = excluded.description",
        )
        .bind(user_id)
        .bind(service.to_owned())
        .bind(description.to_owned())
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_constraint(e, || format!("user {user_id} not found")))?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a service's blocking dependency; true if there was one.
    pub async fn unlock_user(&self, user_id: UserId, service: &str) -> Result<bool> {
        let mut tx = self.write().await?;
        let r = sqlx::query("DELETE FROM user_locks WHERE user_id = $1 AND service = $2")
            .bind(user_id)
            .bind(service.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn user_locks(&self, user_id: UserId) -> Result<Vec<LockRow>> {
        Ok(sqlx::query_as("SELECT service, description FROM user_locks WHERE user_id = $1 ORDER BY service")
            .bind(user_id)
            .fetch_all(self.pool())
            .await?)
    }
}
