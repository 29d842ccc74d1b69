//! Failed logins counted in the database, so every process of a database sees the same
//! counts: three processes do not give an attacker three times the guesses. A key
//! (`a:EMAIL`, `i:ADDRESS`, `k:ADDRESS`) counts failures in a window that starts at its
//! first failure; an expired window starts again at the next failure. The writes go
//! straight to the pool, outside any request's audit transaction: a failed login is
//! recorded by the audit trail as the request it is.

use crate::{Result, Store};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Store {
    /// Milliseconds until the first of `keys` that reached its limit (key, limit) within
    /// `window_ms` is free again; `None` when none did.
    pub async fn throttled_for(&self, keys: &[(&str, i64)], window_ms: i64) -> Result<Option<i64>> {
        let now = now_ms();
        let mut wait = None;
        for (key, max) in keys {
            let row: Option<(i64, i64)> = sqlx::query_as("SELECT count, since FROM login_failures WHERE key = $1")
                .bind((*key).to_owned())
                .fetch_optional(self.pool())
                .await?;
            if let Some((count, since)) = row
                && count >= *max
                && since + window_ms > now
            {
                let left = since + window_ms - now;
                wait = Some(wait.map_or(left, |w: i64| w.max(left)));
            }
        }
        Ok(wait)
    }

    /// One more failure for each of `keys`; counts older than `window_ms` start over.
    pub async fn record_login_failure(&self, keys: &[&str], window_ms: i64) -> Result<()> {
        let now = now_ms();
        for key in keys {
            sqlx::query(
                "INSERT INTO login_failures (key, count, since) VALUES ($1, 1, $2) ON CONFLICT (key) DO UPDATE SET \
                 count = CASE WHEN login_failures.since <= $3 THEN 1 ELSE login_failures.count + 1 END, \
                 since = CASE WHEN login_failures.since <= $3 THEN $2 ELSE login_failures.since END",
            )
            .bind((*key).to_owned())
            .bind(now)
            .bind(now - window_ms)
            .execute(self.pool())
            .await?;
        }
        // Windows long over are of no use to anyone.
        sqlx::query("DELETE FROM login_failures WHERE since <= $1").bind(now - window_ms).execute(self.pool()).await?;
        Ok(())
    }

    /// Forgets the failures of a key (an account that got in).
    pub async fn clear_login_failures(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1").bind(key.to_owned()).execute(self.pool()).await?;
        Ok(())
    }
}
