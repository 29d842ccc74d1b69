//! Rendered answers of `GET /dci/v3/server/{id}`, kept while the database has not
//! changed: the hot read of a billing system's polling, served without a database
//! read or a JSON rendering.
//!
//! Correctness rests on [`DbVersion`]: an answer is kept with the version of the
//! database read it was rendered from, and served only while the database's version
//! is still that one, so no commit (of this process or any other on the same
//! database, through dcim or not) has become visible since. The version is taken at
//! every request, so a write is seen by the very next read, as without the cache:
//! - on SQLite, read from the `-shm` file (one `pread`) before the read, and an answer
//!   is kept only if the version is still that one after it;
//! - on PostgreSQL, the snapshot of the statement that read the session (the same
//!   round trip as before), and an answer is kept with the snapshot of the statement
//!   that read the server: of two round trips a request made, one is left. When the
//!   session came from the session cache (`session_cache_secs`, off by default on
//!   PostgreSQL) the request has no version and is read from the database.
//!
//! Any commit empties the whole cache rather than the servers it touched: what a
//! server's answer shows comes from fourteen tables (its location, rack, owner,
//! template, task, ports, switches, PDUs, addresses, networks), and one rule that
//! cannot miss a table is worth more than the hit rate under steady writes. On
//! PostgreSQL the snapshot is the cluster's: a write in another database of it empties
//! the cache too.
//!
//! Admins' reads only (billing systems call as admins): a customer's read stays a
//! query with its scope in the SQL, as every customer's read is.
//!
//! Answers are kept compressed (LZ4, `lz4_flex`), each against one dictionary: the
//! first answer kept at the current version, which every other server's answer mostly
//! repeats (the same keys, configurations, locations, switch and PDU names). A server
//! of 1.6 KiB of JSON keeps about 250 bytes, so the default budget holds a
//! 100,000-server installation whole; a hit decompresses its answer in under a
//! microsecond, outside the lock. The dictionary changes only when the cache is
//! emptied, so no kept answer outlives the one it was compressed against.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use dcim_metrics::Counter;
use dcim_store::DbVersion;

/// Bytes an entry costs beyond its compressed answer (key, map slot, `Bytes` header
/// and its shared count, the allocator's rounding).
const ENTRY_OVERHEAD: usize = 64;

pub struct ServerCache {
    /// Bytes kept at most (compressed answers and the dictionary); 0: the cache is off.
    budget: usize,
    state: Mutex<State>,
    hits: Counter,
    misses: Counter,
}

#[derive(Default)]
struct State {
    /// The version every kept answer was read at.
    version: Option<DbVersion>,
    /// What the kept answers are compressed against: the first answer kept at
    /// `version`.
    dict: Bytes,
    bytes: usize,
    /// Compressed answers, their length first (`lz4_flex`'s size-prepended block).
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
            state: Mutex::default(),
            hits: metrics.server_cache_hits.clone(),
            misses: metrics.server_cache_misses.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Server `id`'s answer, if one was read at `now`, the database's version at this
    /// moment.
    pub fn get(&self, id: i64, now: &DbVersion) -> Option<Bytes> {
        if self.budget == 0 {
            return None;
        }
        let (packed, dict) = {
            let mut state = self.lock();
            let found = (state.version.as_ref() == Some(now)).then(|| state.answers.get(&id).cloned()).flatten();
            match found {
                Some(packed) => {
                    state.hits += 1;
                    (packed, state.dict.clone())
                }
                None => {
                    state.misses += 1;
                    return None;
                }
            }
        };
        // Only bytes this cache compressed: an error cannot happen, and would be a miss.
        lz4_flex::block::decompress_size_prepended_with_dict(&packed, &dict).ok().map(Bytes::from)
    }

    /// Keeps server `id`'s answer, rendered from a read made at the database's version
    /// `read_at` (or after it, if no commit became visible since: `current` tells).
    /// `current` gives the version now: when the kept answers are of another version,
    /// they are dropped for this one only if it is still the current one (an answer
    /// read before a commit must not replace those read after).
    pub fn put(&self, id: i64, read_at: DbVersion, answer: Bytes, current: impl FnOnce() -> Option<DbVersion>) {
        if self.budget == 0 {
            return;
        }
        let dict = {
            let mut state = self.lock();
            if state.version.as_ref() != Some(&read_at) {
                if current().as_ref() != Some(&read_at) {
                    return;
                }
                state.answers.clear();
                state.version = Some(read_at.clone());
                state.dict = answer.clone();
                state.bytes = answer.len() + ENTRY_OVERHEAD;
            }
            state.dict.clone()
        };
        // Compressed outside the lock (a few microseconds), kept if the cache is still
        // at this version and dictionary.
        let packed = Bytes::from(lz4_flex::block::compress_prepend_size_with_dict(&answer, &dict).into_boxed_slice());
        let mut state = self.lock();
        if state.version.as_ref() != Some(&read_at) || state.dict.as_ptr() != dict.as_ptr() {
            return;
        }
        let cost = packed.len() + ENTRY_OVERHEAD;
        let freed = state.answers.get(&id).map_or(0, |old| old.len() + ENTRY_OVERHEAD);
        if state.bytes + cost > self.budget + freed {
            return;
        }
        state.answers.insert(id, packed);
        state.bytes = state.bytes + cost - freed;
    }

    /// Answers kept, and their bytes, for the metrics; the hits and misses counted
    /// since the last call go to their counters.
    pub fn size(&self) -> (usize, usize) {
        let mut state = self.lock();
        self.hits.inc_by(std::mem::take(&mut state.hits));
        self.misses.inc_by(std::mem::take(&mut state.misses));
        (state.answers.len(), state.bytes)
    }
}
