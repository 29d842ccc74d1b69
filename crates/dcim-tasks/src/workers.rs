//! The background workers of a process, all run and watched one way (as garage lists
//! its workers and omicron its background tasks): a named job with an interval and a
//! bound on its concurrency, whose every round is recorded in memory (when it started
//! and ended, what it did, the last error and when) and listed by `GET
//! /dci/v3/worker`. A round answers a line saying what it did, or the error that
//! stopped it; a worker keeps running after an error and tries again at its next round.
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
    /// Time between the end of a round and the start of the next.
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

    /// Runs `round` now and then `interval` after each round ends, until `stop` turns
    /// true, recording every round.
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
            loop {
                if *stop.borrow() {
                    return;
                }
                w.started();
                let r = round().await;
                w.finished(&r);
                tokio::select! {
                    _ = tokio::time::sleep(w.interval) => {}
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
}
