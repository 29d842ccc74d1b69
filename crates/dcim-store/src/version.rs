//! Which commits a read sees, as something a cache can compare instead of reading.

use std::sync::Arc;

/// Which commits a reader of the database can see. Two equal versions, taken at two
/// moments, mean no commit of any connection or process became visible between them:
/// what was read at the first is still what the database holds. Unequal ones mean
/// only that something may have changed. That is the whole contract a cache relies
/// on: tag what it read with the version of that read (or one taken before it), and
/// serve it only while the version is still that one.
///
/// - **SQLite** ([`crate::Store::db_version`]): the wal-index header, the first 96
///   bytes of the `-shm` file that WAL mode keeps in shared memory for every
///   connection of every process (two copies of the header; the format is the unix
///   VFS's, documented at <https://sqlite.org/walformat.html>). Every commit rewrites
///   both copies, raising their change counter (`iChange`), when it becomes visible;
///   nothing else rewrites them but a WAL restart, which changes them too. Read with
///   one `pread`, no lock and no transaction. Why not `PRAGMA data_version`, SQLite's
///   own answer to "did anyone commit": it is per connection and runs in a read
///   transaction, whose locks were most of what a cache would save (issue 19's
///   profile).
/// - **PostgreSQL**: the snapshot of a statement, `pg_current_snapshot()` (`xmin:xmax:`
///   and the transactions in progress), taken in the statement whose rows it tags, so
///   it costs no round trip of its own. A snapshot decides which rows a statement
///   sees: two equal snapshots see the same committed transactions, since a
///   transaction that commits leaves the in-progress list and one that begins writing
///   raises `xmax`. It is the cluster's, so a write in any database of the cluster
///   changes it: a cache sees more misses than it needs, never a stale row.
#[derive(Clone, PartialEq, Eq)]
pub struct DbVersion(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Wal([u8; 96]),
    Snapshot(Arc<str>),
}

impl DbVersion {
    pub(crate) fn wal(header: [u8; 96]) -> DbVersion {
        DbVersion(Repr::Wal(header))
    }

    pub(crate) fn snapshot(text: String) -> DbVersion {
        DbVersion(Repr::Snapshot(text.into()))
    }
}

impl std::fmt::Debug for DbVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            // The change counter (`iChange`, native byte order) of the first copy.
            Repr::Wal(b) => write!(f, "DbVersion(change {})", u32::from_ne_bytes([b[8], b[9], b[10], b[11]])),
            Repr::Snapshot(s) => write!(f, "DbVersion(snapshot {s})"),
        }
    }
}
