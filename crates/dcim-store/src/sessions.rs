//! Sessions and one-time login keys. Only SHA-256 hashes of tokens and keys are
//! stored: a copy of the database does not let anyone log in.

use sqlx::FromRow;

use crate::{Result, Store, now};

/// The user behind a live session.
#[derive(Debug, Clone, FromRow)]
pub struct SessionUser {
    pub session_id: i64,
    pub user_id: i64,
    pub email: String,
    pub role: String,
    pub last_seen: i64,
}

impl Store {
    pub async fn create_session(&self, user_id: i64, token_hash: &str) -> Result<()> {
        let t = now();
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, last_seen) VALUES ($1, $2, $3, $3)")
            .bind(token_hash.to_owned())
            .bind(user_id)
            .bind(t)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The session for `token_hash` if it was used within `idle_secs`. An idle
    /// session is deleted when found, and a live one has its `last_seen` moved on
    /// (at most once every `touch_every` seconds, to keep reads free of writes).
    pub async fn session_user(
        &self,
        token_hash: &str,
        idle_secs: i64,
        touch_every: i64,
    ) -> Result<Option<SessionUser>> {
        let row: Option<SessionUser> = sqlx::query_as(
            "SELECT s.id AS session_id, u.id AS user_id, u.email, u.role, s.last_seen \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND u.blocked = 0",
        )
        .bind(token_hash.to_owned())
        .fetch_optional(self.pool())
        .await?;
        let Some(s) = row else { return Ok(None) };
        let t = now();
        if t - s.last_seen > idle_secs {
            sqlx::query("DELETE FROM sessions WHERE id = $1").bind(s.session_id).execute(self.pool()).await?;
            return Ok(None);
        }
        if t - s.last_seen >= touch_every {
            sqlx::query("UPDATE sessions SET last_seen = $1 WHERE id = $2")
                .bind(t)
                .bind(s.session_id)
                .execute(self.pool())
                .await?;
        }
        Ok(Some(s))
    }

    /// Ends a session; true if it existed.
    pub async fn delete_session(&self, token_hash: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash.to_owned())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes sessions idle for longer than `idle_secs` and expired keys.
    pub async fn purge_expired(&self, idle_secs: i64) -> Result<u64> {
        let t = now();
        let a =
            sqlx::query("DELETE FROM sessions WHERE last_seen < $1").bind(t - idle_secs).execute(self.pool()).await?;
        let b = sqlx::query("DELETE FROM auth_keys WHERE expires_at < $1").bind(t).execute(self.pool()).await?;
        Ok(a.rows_affected() + b.rows_affected())
    }

    pub async fn create_auth_key(&self, user_id: i64, key_hash: &str, ttl_secs: i64) -> Result<()> {
        sqlx::query("INSERT INTO auth_keys (key_hash, user_id, expires_at) VALUES ($1, $2, $3)")
            .bind(key_hash.to_owned())
            .bind(user_id)
            .bind(now() + ttl_secs)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Uses up a one-time key: returns its user if the key existed, had not expired
    /// and the user is not blocked. The key is gone afterwards either way, and since
    /// the delete is what claims it, two racing uses cannot both succeed.
    pub async fn consume_auth_key(&self, key_hash: &str) -> Result<Option<i64>> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("DELETE FROM auth_keys WHERE key_hash = $1 RETURNING user_id, expires_at")
                .bind(key_hash.to_owned())
                .fetch_optional(self.pool())
                .await?;
        let Some((user_id, expires_at)) = row else { return Ok(None) };
        if expires_at < now() {
            return Ok(None);
        }
        let (blocked,): (i64,) =
            sqlx::query_as("SELECT blocked FROM users WHERE id = $1").bind(user_id).fetch_one(self.pool()).await?;
        Ok((blocked == 0).then_some(user_id))
    }
}
