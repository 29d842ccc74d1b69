//! The storage layer: every SQL statement of dcim lives in this crate.
//!
//! One [`Store`] type serves two real backends, SQLite (the embedded default) and
//! PostgreSQL (for several stateless `dcim` processes on one database). Both run the
//! same statements through sqlx's `Any` driver; they differ only in their migrations
//! (`migrations/sqlite`, `migrations/postgres`) and in the connection set-up below.
//! Statements use `$N` placeholders, which both dialects accept, booleans are 0/1
//! integers and times unix seconds, so no query needs a dialect branch.
//!
//! This crate knows nothing of HTTP or of the DCImanager wire shapes: it returns rows,
//! and the API layer shapes them.

pub mod accounts;
pub mod audit;
mod error;
pub mod ids;
pub mod inventory;
pub mod ipam;
pub mod ipmgr;
pub mod list;
mod native;
pub mod seal;
pub mod servers;
pub mod sessions;
pub mod sites;
pub mod tasks;
pub mod throttle;
pub mod trail;
pub mod users;
mod version;
pub mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use error::StoreError;
pub use version::DbVersion;

/// Result of a storage call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite's hot reads off sqlx (see [`native`]); none on PostgreSQL.
    native: Option<std::sync::Arc<native::NativeReads>>,
    /// The key secrets are sealed with ([`seal`]); none: written in clear (tools and
    /// benchmarks that only seed; `dcim` always has one).
    key: Option<seal::SecretKey>,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://...`). A SQLite file is
    /// created if missing and put in WAL mode.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL '{}': use sqlite://PATH or postgres://...",
                redact_url(url)
            )));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .min_connections(1)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                                 PRAGMA secure_delete = FAST; ",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?
            }
        };
        // One read connection more than the runtime's worker threads, so an inline
        // read finds one free.
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let native = match native::sqlite_path(&url) {
            Some(path) if backend == Backend::Sqlite => {
                Some(std::sync::Arc::new(native::NativeReads::open(path, workers + 1)?))
            }
            _ => None,
        };
        Ok(Store { pool, backend, native, key: None })
    }

    /// The same store sealing secrets with `key` (see [`seal`]).
    pub fn with_key(mut self, key: seal::SecretKey) -> Store {
        self.key = Some(key);
        self
    }

    /// Brings the schema up to date. Safe to run at every start and from several
    /// processes (sqlx takes an advisory lock on PostgreSQL).
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Versions of this build's migrations the database has not applied (successfully).
    pub async fn pending_migrations(&self) -> Result<Vec<i64>> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        let applied: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = $1")
            .bind(true)
            .fetch_all(&self.pool)
            .await?;
        let applied: std::collections::HashSet<i64> = applied.into_iter().map(|r| r.0).collect();
        Ok(migrator.iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect())
    }

    /// Connections of the pool: (open, idle).
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Counts for the metrics: servers by state and by power, tasks running and pending.
    pub async fn metric_counts(&self) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>, i64, i64)> {
        let states: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM servers GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        let power: Vec<(String, i64)> =
            sqlx::query_as("SELECT power_status, COUNT(*) FROM servers GROUP BY power_status ORDER BY power_status")
                .fetch_all(&self.pool)
                .await?;
        let (running, pending): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(CASE WHEN status = 'running' THEN 1 END), COUNT(CASE WHEN status = 'pending' THEN 1 END) \
             FROM tasks WHERE status IN ('running', 'pending')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((states, power, running, pending))
    }

    /// Which commits a read now would see ([`DbVersion`]): on SQLite, where a cache in
    /// this process may check it for the writes of every process. `None` on
    /// PostgreSQL, where it would cost a round trip: there the reads a cache serves
    /// return the version they were made at ([`Store::session_user`],
    /// [`Store::get_server_versioned`]). `None` on an in-memory SQLite too.
    pub fn db_version(&self) -> Option<DbVersion> {
        self.native.as_ref()?.version()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers; used by the health endpoint.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// The current time as unix seconds, the one clock every table uses.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A database URL with any password replaced, fit for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_redacted() {
        assert_eq!(super::redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
