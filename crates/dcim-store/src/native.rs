//! SQLite's hot reads on the caller's own thread: one server and the server list run
//! through rusqlite on a few read connections of the same database file, each with its
//! statements prepared once.
//!
//! Why not sqlx for these: its SQLite driver runs each connection on a worker thread of
//! its own, hands every command and every row across threads, and converts each value
//! to its `Any` form. For the read of one indexed row that handoff was about 40% of the
//! CPU of `GET /dci/v3/server/{id}` (issue 19's profile). The read of one server by its
//! key takes tens of microseconds and does not wait for writers in WAL mode, so it runs
//! inline on the async worker, which costs less than any handoff; a list, which may be
//! every server, runs on a blocking thread. Writes, every other read and all of
//! PostgreSQL stay on sqlx; the statements are the same text on both paths.
//!
//! Consistency: each statement is its own transaction and sees every write committed
//! before it began (WAL), exactly as a read through sqlx does, so nothing is cached and
//! nothing needs invalidating.
//!
//! What a cache of reads may check instead of reading ([`DbVersion`]): the wal-index
//! header every commit rewrites, read from the `-shm` file in one `pread`.
//!
//! The full server list is streamed ([`NativeReads::for_each_row`]): it reads on a
//! connection of its own, opened for it, since it lasts as long as its client takes to
//! receive the answer, and the shared connections must stay free for the short reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dcim_core::query::ListQuery;
use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{Connection, OpenFlags, Row, Statement, ToSql};

use crate::list::{Bind, ListSpec, Page, Scope, page_statements};
use crate::{DbVersion, Result, Store, StoreError};

/// A few read connections, taken by whoever finds one free.
pub(crate) struct NativeReads {
    conns: Vec<Mutex<ReadConn>>,
    next: AtomicUsize,
    path: String,
    /// The database's `-shm` file, read for [`DbVersion`]s; opened at the first.
    shm: std::sync::OnceLock<std::fs::File>,
}

/// A shared read connection, and where each row type's columns are in the answers of
/// the statements it has run: found once per statement and row type, not at every read
/// (a server has 50 columns to look up by name).
struct ReadConn {
    c: Connection,
    /// Row type's name -> statement text -> the positions of its `COLUMNS`.
    columns: HashMap<&'static str, HashMap<String, Vec<usize>>>,
    /// How much of the file it maps now ([`mapped_for`]), and when that was decided.
    mapped: u64,
    decided: Instant,
}

impl ReadConn {
    fn open(path: &str) -> rusqlite::Result<ReadConn> {
        let mapped = mapped_for(path);
        Ok(ReadConn { c: open_read(path, mapped)?, columns: HashMap::new(), mapped, decided: Instant::now() })
    }

    /// Maps the file, or stops, when it has grown past [`MAP_ABOVE`] or shrunk below it
    /// since the last look (one look a minute).
    fn remap(&mut self, path: &str) {
        if self.decided.elapsed() < REMAP_EVERY {
            return;
        }
        self.decided = Instant::now();
        let mapped = mapped_for(path);
        if mapped != self.mapped && self.c.execute_batch(&format!("PRAGMA mmap_size = {mapped};")).is_ok() {
            self.mapped = mapped;
        }
    }
}

/// Statements whose columns a connection remembers, as many as it keeps prepared: a
/// list's text varies with its filter, so the memory is emptied when it is full.
const REMEMBERED: usize = 64;

/// How much of the database file a read connection maps into memory, once the file is
/// larger than [`MAP_ABOVE`]. Without a map each page SQLite's small cache (2 MiB per
/// connection) lacks is a `pread`: at 100,000 servers a random server took 13 of them,
/// and one server was read 15% slower than at 10,000. Mapped, a page the kernel already
/// caches costs no system call and no copy. The mapped pages are the kernel's page
/// cache, which it drops when it needs the room; they count in the process's resident
/// set as file pages (`RssFile`), once for each connection that touched them. Pages
/// still in the WAL are read from it as before.
const MAPPED: u64 = 1 << 30;

/// Below this size the file is not mapped. At 10,000 servers (a file of 12 MiB) one
/// server was read as fast unmapped as mapped (17.9k against 17.3k requests/s: the
/// b-trees' inner pages stay in SQLite's cache), while the map added the file to the
/// resident set once per connection (a peak of 124 MiB, 85 MiB unmapped). The gain
/// begins where the inner pages outgrow the cache, which a 100,000-server file (117 MiB)
/// does.
const MAP_ABOVE: u64 = 64 << 20;

/// How often a shared connection looks at the file's size again.
const REMAP_EVERY: Duration = Duration::from_secs(60);

/// [`MAPPED`] for a file larger than [`MAP_ABOVE`], else 0.
fn mapped_for(path: &str) -> u64 {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAP_ABOVE { MAPPED } else { 0 }
}

impl ToSql for Bind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Bind::Int(i) => ToSqlOutput::from(*i),
            Bind::Text(s) => ToSqlOutput::from(s.as_str()),
            Bind::Null => ToSqlOutput::Owned(Value::Null),
        })
    }
}

impl NativeReads {
    /// Opens `count` connections to the database file at `path` (which sqlx has
    /// already created and put in WAL mode). They refuse writes (`query_only`).
    pub(crate) fn open(path: &str, count: usize) -> Result<NativeReads> {
        let conns = (0..count.max(1))
            .map(|_| ReadConn::open(path).map(Mutex::new))
            .collect::<rusqlite::Result<_>>()
            .map_err(StoreError::Native)?;
        let reads = NativeReads { conns, next: AtomicUsize::new(0), path: path.to_owned(), shm: Default::default() };
        // One read on each connection opens its WAL, so this process holds the `-shm`
        // file open (SQLite removes it when its last user closes) as long as it reads.
        for rc in &reads.conns {
            let c = &rc.lock().unwrap_or_else(|p| p.into_inner()).c;
            c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
                .map_err(StoreError::Native)?;
        }
        Ok(reads)
    }

    /// The database's [`DbVersion`] now; `None` when the `-shm` file cannot be read
    /// (then nothing may be cached).
    pub(crate) fn version(&self) -> Option<DbVersion> {
        use std::os::unix::fs::FileExt;
        let shm = match self.shm.get() {
            Some(f) => f,
            None => {
                let f = std::fs::File::open(format!("{}-shm", self.path)).ok()?;
                self.shm.get_or_init(|| f)
            }
        };
        let mut b = [0u8; 96];
        shm.read_exact_at(&mut b, 0).ok()?;
        Some(DbVersion::wal(b))
    }

    /// Every row of `sql` as a `T`, handed to `each` as it is read, on a connection
    /// opened for this read alone; `each` answers `false` to stop early. One statement,
    /// so one snapshot of the database however long the reader takes.
    pub(crate) fn for_each_row<T: NativeRow>(
        &self,
        sql: &str,
        binds: &[Bind],
        mut each: impl FnMut(T) -> Result<bool>,
    ) -> Result<()> {
        let c = open_read(&self.path, mapped_for(&self.path)).map_err(StoreError::Native)?;
        let mut st = c.prepare(sql).map_err(StoreError::Native)?;
        let at = columns_of::<T>(&st).map_err(StoreError::Native)?;
        let mut rows = st.query(rusqlite::params_from_iter(binds.iter())).map_err(StoreError::Native)?;
        while let Some(r) = rows.next().map_err(StoreError::Native)? {
            if !each(T::from_native(r, &at).map_err(StoreError::Native)?)? {
                break;
            }
        }
        Ok(())
    }

    /// Runs `f` on a free connection. There are more connections than the runtime has
    /// worker threads, so one is free unless a read is slow; then this waits for one.
    fn with<R>(&self, f: impl FnOnce(&mut ReadConn) -> R) -> R {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(mut c) = self.conns[(start + i) % n].try_lock() {
                c.remap(&self.path);
                return f(&mut c);
            }
        }
        let mut c = self.conns[start % n].lock().unwrap_or_else(|p| p.into_inner());
        c.remap(&self.path);
        f(&mut c)
    }

    /// The one integer `sql` answers (a count).
    pub(crate) fn count(&self, sql: &str, binds: &[Bind]) -> Result<i64> {
        self.with(|rc| rc.c.prepare_cached(sql)?.query_row(rusqlite::params_from_iter(binds.iter()), |r| r.get(0)))
            .map_err(StoreError::Native)
    }
}

/// A row type the native path reads: the columns it takes, by name, and how it is
/// built from them (found once per statement, then read by position).
pub(crate) trait NativeRow: Sized {
    const COLUMNS: &'static [&'static str];
    fn from_native(r: &Row<'_>, at: &[usize]) -> rusqlite::Result<Self>;
}

impl NativeReads {
    /// The rows of `sql` bound to `binds`, as `T`s.
    pub(crate) fn typed_rows<T: NativeRow>(&self, sql: &str, binds: &[Bind]) -> Result<Vec<T>> {
        self.with(|ReadConn { c, columns, .. }| {
            let mut st = c.prepare_cached(sql)?;
            let by_sql = columns.entry(std::any::type_name::<T>()).or_default();
            if !by_sql.contains_key(sql) {
                if by_sql.len() >= REMEMBERED {
                    by_sql.clear();
                }
                by_sql.insert(sql.to_owned(), columns_of::<T>(&st)?);
            }
            let at = &by_sql[sql];
            let mut rows = st.query(rusqlite::params_from_iter(binds.iter()))?;
            let mut out = vec![];
            while let Some(r) = rows.next()? {
                out.push(T::from_native(r, at)?);
            }
            Ok(out)
        })
        .map_err(StoreError::Native)
    }
}

/// A read connection of the database file at `path` (which sqlx has already created
/// and put in WAL mode): it refuses writes (`query_only`), and reads `mapped` bytes of
/// the file through a memory map (`mmap_size`; see [`MAP_ABOVE`]).
fn open_read(path: &str, mapped: u64) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(path, flags)?;
    c.execute_batch(&format!("PRAGMA query_only = ON; PRAGMA busy_timeout = 10000; PRAGMA mmap_size = {mapped};"))?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(c)
}

/// Where `T`'s columns are in the statement's answer, found in one pass over its names
/// (`column_index` per name would walk all of them each time: a server has 50 columns).
fn columns_of<T: NativeRow>(st: &Statement<'_>) -> rusqlite::Result<Vec<usize>> {
    let at: std::collections::HashMap<&str, usize> =
        st.column_names().into_iter().enumerate().map(|(i, n)| (n, i)).collect();
    T::COLUMNS
        .iter()
        .map(|n| at.get(n).copied().ok_or_else(|| rusqlite::Error::InvalidColumnName((*n).to_owned())))
        .collect()
}

impl Store {
    /// [`Store::fetch_page`] on the native read path: the same statements, on a
    /// blocking thread (a page may be every server, hundreds of milliseconds that must
    /// not hold an async worker).
    pub(crate) async fn fetch_native_page<T: NativeRow + Send + 'static>(
        &self,
        native: &Arc<NativeReads>,
        spec: &ListSpec,
        q: &ListQuery,
        scopes: &[Scope],
    ) -> Result<Page<T>> {
        let (rows, count) = page_statements(spec, q, scopes)?;
        let native = native.clone();
        tokio::task::spawn_blocking(move || {
            let items: Vec<T> = native.typed_rows(&rows.text, &rows.binds)?;
            let size = match count {
                None => items.len() as i64,
                Some(c) => native.count(&c.text, &c.binds)?,
            };
            Ok(Page { items, size })
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.try_into_panic().unwrap_or_else(|e| Box::new(e.to_string()))))
    }
}

/// The file of a `sqlite://PATH[?options]` URL; `None` for an in-memory database, which
/// a second connection could not see.
pub(crate) fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_file_of_a_url() {
        assert_eq!(sqlite_path("sqlite:///var/lib/dcim/dcim.db?mode=rwc"), Some("/var/lib/dcim/dcim.db"));
        assert_eq!(sqlite_path("sqlite://dcim-data/dcim.db"), Some("dcim-data/dcim.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }

    /// The version stays while the database is only read, and moves at each commit of
    /// any connection, once it is committed.
    #[test]
    fn the_version_moves_with_each_commit() {
        let dir = std::env::temp_dir().join(format!("dcim-version-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.db");
        let w = Connection::open(&path).unwrap();
        w.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x)").unwrap();
        let reads = NativeReads::open(path.to_str().unwrap(), 2).unwrap();
        let v0 = reads.version().expect("a version");
        assert_eq!(reads.count("SELECT count(*) FROM t", &[]).unwrap(), 0);
        assert_eq!(reads.version(), Some(v0.clone()), "a read changes nothing");
        w.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)").unwrap();
        assert_eq!(reads.version(), Some(v0.clone()), "not before the commit");
        w.execute_batch("COMMIT").unwrap();
        let v1 = reads.version().unwrap();
        assert_ne!(v1, v0);
        Connection::open(&path).unwrap().execute("INSERT INTO t VALUES (2)", []).unwrap();
        let v2 = reads.version().unwrap();
        assert!(v2 != v1 && v2 != v0, "{v0:?} {v1:?} {v2:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A small file is read through the cache; one past `MAP_ABOVE` is mapped, and a
    /// shared connection maps it once it has grown there.
    #[test]
    fn a_file_is_mapped_once_it_is_large() {
        let dir = std::env::temp_dir().join(format!("dcim-map-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let path_s = path.to_str().unwrap();
        Connection::open(&path).unwrap().execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x)").unwrap();
        let size = |c: &Connection| c.query_row("PRAGMA mmap_size", [], |r| r.get::<_, i64>(0)).unwrap();
        let mut rc = ReadConn::open(path_s).unwrap();
        assert_eq!(size(&rc.c), 0);
        // Grown (the pages past the header's count are never read): mapped at the next look.
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(MAP_ABOVE + 4096).unwrap();
        rc.remap(path_s);
        assert_eq!(size(&rc.c), 0, "not before a minute has passed");
        rc.decided -= REMAP_EVERY;
        rc.remap(path_s);
        assert_eq!(size(&rc.c), MAPPED as i64);
        assert_eq!(size(&ReadConn::open(path_s).unwrap().c), MAPPED as i64);
        let _: i64 = rc.c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
