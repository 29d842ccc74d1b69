//! The background workers of a process, all run and watched one way (as garage lists
//! its workers and omicron its background tasks): a named job with an interval and a
//! bound on its concurrency, whose every round is recorded in memory (when it started
//! and ended, what it did, the last error and when) and listed by `GET
//! /dci/v3/worker`. A round answers a line saying what it did, or the error that
//! stopped it; a worker keeps running after an error and tries again at its next round.
//!
//! Rounds start on a fixed schedule, one every interval. A round that takes longer
//! than the interval starts the next at once, and the worker is then behind by the
//! difference: a warning says so, `GET /dci/v3/worker` shows it as `behind_ms`, and
//! `/metrics` as `dcim_worker_behind_seconds`. A power poller with more BMCs than its
//! concurrency can read in one interval is the case this tells of.
//!
//! Adding a periodic job: write its round as an `async` function answering
//! [`Round`], and [`Workers::spawn`] it where the process starts (`dcim serve`). A job
//! with a loop of its own (the webhook deliveries wait for work, not for a clock)
//! [`Workers::register`]s itself and reports its rounds with [`Worker::started`] and
//! [`Worker::finished`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// What one round did, or why it stopped.
pub type Round = Result<String, String>;

/// The record of a worker's rounds.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub runs: u64,
    pub failures: u64,
    /// Unix seconds.
    pub last_started: Option<i64>,
    pub last_finished: Option<i64>,
    pub last_duration_ms: Option<u64>,
    /// How much longer than the interval the last round took: how late the next one
    /// starts (0: on time).
    pub behind_ms: u64,
    /// The last round's line, or its error.
    pub last_result: String,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// Whether a round is under way.
    pub running: bool,
}

/// One background worker.
#[derive(Debug)]
pub struct Worker {
    pub name: &'static str,
    /// Time between the starts of two rounds.
    pub interval: Duration,
    /// How many device calls or sends a round makes at once.
    pub concurrency: usize,
    status: Mutex<Status>,
    round_started: Mutex<Option<Instant>>,
}

fn unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Worker {
    /// Records the start of a round.
    pub fn started(&self) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.last_started = Some(unix());
        s.running = true;
        *self.round_started.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Records the end of a round and what it did.
    pub fn finished(&self, r: &Round) {
        let took = self.round_started.lock().unwrap_or_else(|p| p.into_inner()).take().map(|t| t.elapsed());
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.runs += 1;
        s.running = false;
        s.last_finished = Some(unix());
        s.last_duration_ms = took.map(|d| d.as_millis() as u64);
        let behind = took.map_or(Duration::ZERO, |t| t.saturating_sub(self.interval));
        s.behind_ms = behind.as_millis() as u64;
        if !behind.is_zero() {
            tracing::warn!(
                worker = self.name,
                behind_ms = s.behind_ms,
                interval_ms = self.interval.as_millis() as u64,
                took_ms = s.last_duration_ms,
                "a round took longer than the interval: the worker is behind, and its next round starts at once"
            );
        }
        match r {
            Ok(line) => s.last_result = line.clone(),
            Err(e) => {
                tracing::warn!(worker = self.name, error = %e, "a background round failed");
                s.failures += 1;
                s.last_result = format!("failed: {e}");
                s.last_error = Some(e.clone());
                s.last_error_at = s.last_finished;
            }
        }
    }

    pub fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The process's workers, in the order they were started.
#[derive(Debug, Default)]
pub struct Workers {
    list: Mutex<Vec<Arc<Worker>>>,
}

impl Workers {
    /// Adds a worker that runs its own loop and reports its rounds.
    pub fn register(&self, name: &'static str, interval: Duration, concurrency: usize) -> Arc<Worker> {
        let w = Arc::new(Worker {
            name,
            interval,
            concurrency,
            status: Mutex::new(Status::default()),
            round_started: Mutex::new(None),
        });
        self.list.lock().unwrap_or_else(|p| p.into_inner()).push(w.clone());
        w
    }

    /// Runs `round` now and then every `interval` (at once after a round that took
    /// longer), until `stop` turns true, recording every round.
    pub fn spawn<F, Fut>(
        &self,
        name: &'static str,
        interval: Duration,
        concurrency: usize,
        mut stop: watch::Receiver<bool>,
        round: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Round> + Send,
    {
        let w = self.register(name, interval, concurrency);
        tokio::spawn(async move {
            let mut next = tokio::time::Instant::now();
            loop {
                if *stop.borrow() {
                    return;
                }
                w.started();
                let r = round().await;
                w.finished(&r);
                // The schedule goes on from now when the round overran it.
                next = (next + w.interval).max(tokio::time::Instant::now());
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {}
                    _ = stop.changed() => return,
                }
            }
        })
    }

    /// Every worker with its record.
    pub fn list(&self) -> Vec<(Arc<Worker>, Status)> {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|w| (w.clone(), w.status())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rounds_are_recorded_and_errors_kept() {
        let workers = Workers::default();
        let (stop_tx, stop) = watch::channel(false);
        let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = n.clone();
        let h = workers.spawn("test", Duration::from_millis(5), 2, stop, move || {
            let i = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { if i == 1 { Err("the second round broke".to_owned()) } else { Ok(format!("round {i}")) } }
        });
        while n.load(std::sync::atomic::Ordering::SeqCst) < 4 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        stop_tx.send(true).unwrap();
        h.await.unwrap();
        let (w, s) = workers.list().pop().unwrap();
        assert_eq!((w.name, w.concurrency), ("test", 2));
        assert!(s.runs >= 3 && s.failures == 1, "{s:?}");
        assert_eq!(s.last_error.as_deref(), Some("the second round broke"));
        assert!(s.last_result.starts_with("round "), "a later round succeeded: {s:?}");
        assert!(s.last_finished.is_some() && s.last_duration_ms.is_some() && !s.running);
    }

    /// Rounds start every interval, not an interval after the last ended; a round that
    /// overruns makes the worker behind by the difference, and one on time clears it.
    #[tokio::test]
    async fn a_round_longer_than_the_interval_is_behind_by_the_difference() {
        let workers = Workers::default();
        let (stop_tx, stop) = watch::channel(false);
        let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let (counter, seen) = (n.clone(), starts.clone());
        let h = workers.spawn("slow", Duration::from_millis(100), 1, stop, move || {
            let i = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            seen.lock().unwrap().push(Instant::now());
            // The second round takes 250 ms of a 100 ms interval; the others 60 ms.
            let took = if i == 1 { 250 } else { 60 };
            async move {
                tokio::time::sleep(Duration::from_millis(took)).await;
                Ok(format!("round {i}"))
            }
        });
        let mut seen_behind = false;
        let w = loop {
            let (w, s) = workers.list().pop().unwrap();
            if s.runs == 2 {
                assert!((140..400).contains(&s.behind_ms), "behind by about 150 ms: {s:?}");
                seen_behind = true;
            }
            if s.runs >= 4 {
                assert_eq!(s.behind_ms, 0, "a round on time clears it: {s:?}");
                break w;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        stop_tx.send(true).unwrap();
        h.await.unwrap();
        assert!(seen_behind, "the record after the long round was seen (its next round runs 60 ms)");
        let starts = starts.lock().unwrap().clone();
        let gap = |i: usize| starts[i + 1].duration_since(starts[i]).as_millis();
        // Round 0 took 60 ms and round 1 still started 100 ms after it began (not 160,
        // as an interval after its end would); round 2 started as round 1 ended, at
        // once; round 3 an interval after round 2 began.
        assert!((95..150).contains(&gap(0)), "fixed rate: {}", gap(0));
        assert!((245..340).contains(&gap(1)), "at once after the overrun: {}", gap(1));
        assert!((95..150).contains(&gap(2)), "back on the schedule: {}", gap(2));
        assert_eq!(w.interval, Duration::from_millis(100));
    }
}
