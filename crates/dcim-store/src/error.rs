//! The storage errors the layers above act on: missing rows, constraint conflicts,
//! rejected list queries. Anything else is a database failure carried as is.

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
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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
