//! The storage errors the layers above act on: missing rows, constraint conflicts,
//! rejected list queries, a database that cannot be reached now. Anything else is a
//! database failure carried as is. The layers above never look into sqlx's errors.

/// What went wrong in a storage call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No row with that id (or not visible to the caller).
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// A uniqueness or reference constraint refused the write.
    #[error("{0}")]
    Conflict(String),
    /// A list query names an unknown field or compares it with the wrong type.
    #[error("{param}: {message}")]
    Query { param: &'static str, message: String, position: Option<usize> },
    /// The database URL or options are unusable.
    #[error("{0}")]
    Config(String),
    /// The database cannot be reached now (no connection in time, the pool closed, the
    /// network): worth retrying, unlike the failures below.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A failure of the native SQLite read path (`native.rs`).
    #[error("database error")]
    Native(#[source] rusqlite::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    /// Sorts a driver error into what the layers above act on: unreachable, or failed.
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => StoreError::Unavailable(e),
            e => StoreError::Database(e),
        }
    }
}

impl StoreError {
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        StoreError::NotFound { what, id: id.to_string() }
    }

    /// Turns a unique or foreign-key violation into [`StoreError::Conflict`] with `msg`.
    pub(crate) fn conflict_on_constraint(err: impl Into<StoreError>, msg: impl FnOnce() -> String) -> Self {
        let err = err.into();
        if let StoreError::Database(sqlx::Error::Database(db)) = &err
            && matches!(
                db.kind(),
                sqlx::error::ErrorKind::UniqueViolation | sqlx::error::ErrorKind::ForeignKeyViolation
            )
        {
            return StoreError::Conflict(msg());
        }
        err
    }
}
