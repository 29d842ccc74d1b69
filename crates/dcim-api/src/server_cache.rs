//! Rendered answers of `GET /dci/v3/server/{id}`, kept while the database has not
//! changed: the hot read of a billing system's polling, served without a database
//! read or a JSON rendering.
//!
//! Correctness rests on [`DbVersion`]: an answer is kept with the version read before
//! the database read it was rendered from, and served only while the database's
//! version is still that one, so no commit (of this process or any other on the same
//! SQLite file, through dcim or not) has become visible since. The version is read at
//! every request (one `pread`), so a write is seen by the very next read, as without
//! the cache. Any commit empties the whole cache rather than the servers it touched:
//! what a server's answer shows comes from fourteen tables (its location, rack,
//! owner, template, task, ports, switches, PDUs, addresses, networks), and one rule
//! that cannot miss a table is worth more than the hit rate under steady writes.
//!
//! PostgreSQL has no such version to read without a round trip, which is what the
//! cache saves, so there it stays empty ([`dcim_store::Store::db_version`] is `None`).
//!
//! Admins' reads only (billing systems call as admins): a customer's read stays a
//! query with its scope in the SQL, as every customer's read is.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use dcim_metrics::Counter;
use dcim_store::DbVersion;

/// Bytes an entry costs beyond its answer (key, map slot, `Bytes` header).
const ENTRY_OVERHEAD: usize = 64;

/// Parts of the cache, each behind a lock of its own, so that the runtime's threads
/// answering at once seldom wait for one another (one lock was a tenth of a hit's
/// time); a server's part is its id modulo their number.
const SHARDS: usize = 32;

pub struct ServerCache {
    /// Answers kept at most, in bytes; 0: the cache is off.
    budget: usize,
    /// Bytes kept now, over every shard.
    bytes: AtomicUsize,
    shards: Box<[Mutex<Shard>]>,
    hits: Counter,
    misses: Counter,
}

#[derive(Default)]
struct Shard {
    /// The version every answer of this shard was read at.
    version: Option<DbVersion>,
    bytes: usize,
    answers: HashMap<i64, Bytes>,
    /// Hits and misses since the metrics last took them (counted under the lock
    /// rather than on the counters, which every thread would write at every read).
    hits: u64,
    misses: u64,
}

impl ServerCache {
    /// A cache of `budget` bytes, counting its answers in `metrics`.
    pub fn new(budget: usize, metrics: &dcim_metrics::Metrics) -> Self {
        ServerCache {
            budget,
            bytes: AtomicUsize::new(0),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hits: metrics.server_cache_hits.clone(),
            misses: metrics.server_cache_misses.clone(),
        }
    }

    fn shard(&self, id: i64) -> std::sync::MutexGuard<'_, Shard> {
        let i = id.rem_euclid(SHARDS as i64) as usize;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Server `id`'s answer, if one was read at `now`, the database's version at this
    /// moment.
    pub fn get(&self, id: i64, now: &DbVersion) -> Option<Bytes> {
        if self.budget == 0 {
            return None;
        }
        let mut shard = self.shard(id);
        let found = (shard.version.as_ref() == Some(now)).then(|| shard.answers.get(&id).cloned()).flatten();
        match found {
            Some(_) => shard.hits += 1,
            None => shard.misses += 1,
        };
        found
    }

    /// Keeps server `id`'s answer, rendered from a read made after the database's
    /// version was `read_at`. `current` gives the version now: when the answers kept
    /// beside it are of another version, they are dropped for this one only if it is
    /// still the current one (an answer read before a commit must not replace those
    /// read after).
    pub fn put(&self, id: i64, read_at: DbVersion, answer: Bytes, current: impl FnOnce() -> Option<DbVersion>) {
        if self.budget == 0 {
            return;
        }
        let mut shard = self.shard(id);
        if shard.version != Some(read_at) {
            if current() != Some(read_at) {
                return;
            }
            shard.version = Some(read_at);
            shard.answers.clear();
            self.bytes.fetch_sub(shard.bytes, Ordering::Relaxed);
            shard.bytes = 0;
        }
        let cost = answer.len() + ENTRY_OVERHEAD;
        let freed = shard.answers.get(&id).map_or(0, |old| old.len() + ENTRY_OVERHEAD);
        if self.bytes.load(Ordering::Relaxed) + cost > self.budget + freed {
            return;
        }
        shard.answers.insert(id, answer);
        shard.bytes = shard.bytes + cost - freed;
        self.bytes.fetch_add(cost, Ordering::Relaxed);
        self.bytes.fetch_sub(freed, Ordering::Relaxed);
    }

    /// Answers kept, and their bytes, for the metrics; the hits and misses counted
    /// since the last call go to their counters.
    pub fn size(&self) -> (usize, usize) {
        let mut entries = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            entries += shard.answers.len();
            self.hits.inc_by(std::mem::take(&mut shard.hits));
            self.misses.inc_by(std::mem::take(&mut shard.misses));
        }
        (entries, self.bytes.load(Ordering::Relaxed))
    }
}
