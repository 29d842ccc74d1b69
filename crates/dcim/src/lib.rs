//! The `dcim` program: configuration, the server's life cycle, demo data, and the
//! administrative subcommands. The binary in `main.rs` is a thin shell over this
//! library so that tests can start the real server in-process on port 0.

pub mod config;
pub mod demo;
pub mod framing;
pub mod limits;
pub mod secrets;
pub mod serve;
pub mod site;
pub mod tls;
pub mod webhooks;

pub use config::Config;
