//! The task engine and the operations built on it.
//!
//! An operation (power, suspend, diagnostics, disk clearing, OS install) is a list
//! of named, idempotent steps ([`ops`]). [`Engine::submit`] records it as a task row;
//! workers in any `dcim` process claim runnable tasks under a lease, run steps with
//! timeouts and retries, write progress after each, park a task that waits for a
//! device or an agent (freeing the worker), and finish it with its effects on the
//! server in one transaction. A worker that dies leaves a lease that expires; the
//! next claim resumes the task at its recorded step, and gives up with a clear
//! reason after repeated deaths. Nothing here speaks HTTP.

pub mod engine;
pub mod ops;
pub mod poller;
pub mod port_poller;
pub mod sites;
pub mod workers;

pub use engine::{Engine, EngineConfig};
pub use ops::Operation;

tokio::task_local! {
    /// The id of the HTTP request being served, set around each request by the API, so
    /// that [`Engine::submit`] records it with the tasks the request starts (and their
    /// log lines carry it).
    pub static REQUEST_ID: String;
}
