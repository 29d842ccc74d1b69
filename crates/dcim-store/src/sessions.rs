//! Sessions, long-lived tokens and one-time login keys. Only SHA-256 hashes of tokens
//! and keys are stored: a copy of the database does not let anyone log in.
//!
//! A session ends after an idle time; a long-lived token (`expires_at` set, made by
//! `POST /auth/v4/token` for integrations) at its expiry instead. A session of a user
//! with two-factor authentication starts unconfirmed and serves nothing until a code
//! confirms it.

use sqlx::FromRow;

use dcim_core::Role;

use crate::ids::{Flag, UserId};
use crate::{Backend, DbVersion, Result, Store, now};

/// The columns and tables of [`Store::session_user`]'s statement, after its `SELECT`.
macro_rules! SESSION_USER {
    () => {
        "s.id AS session_id, u.id AS user_id, u.email, u.role, s.last_seen, s.confirmed, s.expires_at \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND u.blocked = 0"
    };
}

/// The user behind a live session.
#[derive(Debug, Clone, FromRow)]
pub struct SessionUser {
    pub session_id: i64,
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub last_seen: i64,
    #[sqlx(try_from = "Flag")]
    pub confirmed: bool,
    pub expires_at: Option<i64>,
    /// On PostgreSQL, the snapshot the session was read at ([`SessionUser::db_version`]).
    #[sqlx(default)]
    db_snapshot: Option<String>,
}

impl SessionUser {
    /// Which commits the read of the session saw, on PostgreSQL (see [`DbVersion`]): a
    /// cache may serve what was read at the same version without a read of its own.
    /// `None` on SQLite, whose version is read without a query
    /// ([`Store::db_version`]).
    pub fn db_version(&self) -> Option<DbVersion> {
        self.db_snapshot.clone().map(DbVersion::snapshot)
    }
}

/// A session or long-lived token as its owner may list it (never the token).
#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub user_id: UserId,
    pub description: Option<String>,
    pub created_at: i64,
    pub last_seen: i64,
    pub expires_at: Option<i64>,
    #[sqlx(try_from = "Flag")]
    pub confirmed: bool,
}

/// What confirming a session with a second factor needs to know.
#[derive(Debug, Clone, FromRow)]
pub struct PendingSession {
    pub session_id: i64,
    pub user_id: UserId,
    #[sqlx(try_from = "Flag")]
    pub confirmed: bool,
    pub totp_secret: Option<String>,
    pub totp_last_step: i64,
}

impl Store {
    /// Opens a session; an unconfirmed one waits for a second factor.
    pub async fn create_session(&self, user_id: UserId, token_hash: &str, confirmed: bool) -> Result<i64> {
        let mut tx = self.write().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO sessions (token_hash, user_id, created_at, last_seen, confirmed) \
             VALUES ($1, $2, $3, $3, $4) RETURNING id",
        )
        .bind(token_hash.to_owned())
        .bind(user_id)
        .bind(now())
        .bind(i64::from(confirmed))
        .fetch_one(&mut *tx)
        .await?;
        crate::audit::set_target("user", user_id);
        tx.commit().await?;
        Ok(id)
    }

    /// Makes a long-lived token: no idle limit, valid until `expires_at`.
    pub async fn create_token(
        &self,
        user_id: UserId,
        token_hash: &str,
        expires_at: i64,
        description: &str,
    ) -> Result<i64> {
        let mut tx = self.write().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO sessions (token_hash, user_id, created_at, last_seen, confirmed, expires_at, description) \
             VALUES ($1, $2, $3, $3, 1, $4, $5) RETURNING id",
        )
        .bind(token_hash.to_owned())
        .bind(user_id)
        .bind(now())
        .bind(expires_at)
        .bind(description.to_owned())
        .fetch_one(&mut *tx)
        .await?;
        crate::audit::set_target("token", id);
        tx.commit().await?;
        Ok(id)
    }

    /// A user's live sessions and tokens, newest first.
    pub async fn list_tokens(&self, user_id: UserId) -> Result<Vec<TokenRow>> {
        Ok(sqlx::query_as(
            "SELECT id, user_id, description, created_at, last_seen, expires_at, confirmed FROM sessions \
             WHERE user_id = $1 AND (expires_at IS NULL OR expires_at >= $2) ORDER BY id DESC",
        )
        .bind(user_id)
        .bind(now())
        .fetch_all(self.pool())
        .await?)
    }

    /// Ends the session or token `id` (of `user_id` only, when given); its token hash
    /// if it existed.
    pub async fn delete_session_by_id(&self, id: i64, user_id: Option<UserId>) -> Result<Option<String>> {
        let mut tx = self.write().await?;
        let row: Option<(String,)> = match user_id {
            Some(u) => {
                sqlx::query_as("DELETE FROM sessions WHERE id = $1 AND user_id = $2 RETURNING token_hash")
                    .bind(id)
                    .bind(u)
                    .fetch_optional(&mut *tx)
                    .await?
            }
            None => {
                sqlx::query_as("DELETE FROM sessions WHERE id = $1 RETURNING token_hash")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
            }
        };
        tx.commit().await?;
        Ok(row.map(|r| r.0))
    }

    /// Ends every session of a user but `keep` (a session id; 0 keeps none).
    pub async fn delete_other_sessions(&self, user_id: UserId, keep: i64) -> Result<u64> {
        let mut tx = self.write().await?;
        let r = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(user_id)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    /// The session `token_hash` and its user's TOTP state, confirmed or not.
    pub async fn pending_session(&self, token_hash: &str) -> Result<Option<PendingSession>> {
        let row: Option<PendingSession> = sqlx::query_as(
            "SELECT s.id AS session_id, u.id AS user_id, s.confirmed, u.totp_secret, u.totp_last_step \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND u.blocked = 0 AND (s.expires_at IS NULL OR s.expires_at >= $2)",
        )
        .bind(token_hash.to_owned())
        .bind(now())
        .fetch_optional(self.pool())
        .await?;
        row.map(|mut p| {
            p.totp_secret = self.open_opt(crate::seal::TOTP_SECRET, p.totp_secret.take())?;
            Ok(p)
        })
        .transpose()
    }

    pub async fn confirm_session(&self, session_id: i64) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE sessions SET confirmed = 1, last_seen = $2 WHERE id = $1")
            .bind(session_id)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Counts a wrong second factor against a session; at `max` failures the session
    /// is deleted (its user must log in again, which the login throttle counts).
    /// Returns whether the session is still there.
    pub async fn fail_confirmation(&self, session_id: i64, max: i64) -> Result<bool> {
        let mut tx = self.write().await?;
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE sessions SET confirm_failures = confirm_failures + 1 WHERE id = $1 RETURNING confirm_failures",
        )
        .bind(session_id)
        .fetch_optional(&mut *tx)
        .await?;
        let alive = match row {
            Some((n,)) if n < max => true,
            Some(_) => {
                sqlx::query("DELETE FROM sessions WHERE id = $1").bind(session_id).execute(&mut *tx).await?;
                false
            }
            None => false,
        };
        tx.commit().await?;
        Ok(alive)
    }

    /// The session for `token_hash` if it was used within `idle_secs` (a long-lived
    /// token: if it has not expired). An idle or expired session is deleted when found, and a live one has its `last_seen` moved on
    /// (at most once every `touch_every` seconds, to keep reads free of writes).
    pub async fn session_user(
        &self,
        token_hash: &str,
        idle_secs: i64,
        touch_every: i64,
    ) -> Result<Option<SessionUser>> {
        // On PostgreSQL the statement's snapshot comes with the session, in the same
        // round trip: what the request may be answered from a cache at.
        let sql = match self.backend() {
            Backend::Postgres => concat!("SELECT pg_current_snapshot()::text AS db_snapshot, ", SESSION_USER!()),
            Backend::Sqlite => concat!("SELECT ", SESSION_USER!()),
        };
        let row: Option<SessionUser> =
            sqlx::query_as(sql).bind(token_hash.to_owned()).fetch_optional(self.pool()).await?;
        let Some(s) = row else { return Ok(None) };
        let t = now();
        let expired = match s.expires_at {
            Some(at) => t > at,
            None => t - s.last_seen > idle_secs,
        };
        if expired {
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
        let mut tx = self.write().await?;
        let r = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes sessions idle for longer than `idle_secs`, expired tokens and keys.
    pub async fn purge_expired(&self, idle_secs: i64) -> Result<u64> {
        let t = now();
        let a = sqlx::query("DELETE FROM sessions WHERE (expires_at IS NULL AND last_seen < $1) OR expires_at < $2")
            .bind(t - idle_secs)
            .bind(t)
            .execute(self.pool())
            .await?;
        let b = sqlx::query("DELETE FROM auth_keys WHERE expires_at < $1").bind(t).execute(self.pool()).await?;
        Ok(a.rows_affected() + b.rows_affected())
    }

    pub async fn create_auth_key(&self, user_id: UserId, key_hash: &str, ttl_secs: i64) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO auth_keys (key_hash, user_id, expires_at) VALUES ($1, $2, $3)")
            .bind(key_hash.to_owned())
            .bind(user_id)
            .bind(now() + ttl_secs)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Uses up a one-time key: returns its user if the key existed, had not expired
    /// and the user is not blocked. The key is gone afterwards either way, and since
    /// the delete is what claims it, two racing uses cannot both succeed.
    pub async fn consume_auth_key(&self, key_hash: &str) -> Result<Option<UserId>> {
        let mut tx = self.write().await?;
        let row: Option<(UserId, i64)> =
            sqlx::query_as("DELETE FROM auth_keys WHERE key_hash = $1 RETURNING user_id, expires_at")
                .bind(key_hash.to_owned())
                .fetch_optional(&mut *tx)
                .await?;
        let user = match row {
            Some((user_id, expires_at)) if expires_at >= now() => {
                let (blocked,): (Flag,) =
                    sqlx::query_as("SELECT blocked FROM users WHERE id = $1").bind(user_id).fetch_one(&mut *tx).await?;
                (!bool::from(blocked)).then_some(user_id)
            }
            _ => None,
        };
        tx.commit().await?;
        Ok(user)
    }
}
