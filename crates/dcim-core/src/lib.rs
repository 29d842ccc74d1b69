//! Domain types and rules of dcim, with no I/O.
//!
//! Everything here is pure: the validated newtypes the API parses into, the enums
//! whose spellings are part of the DCImanager 6 contract, the list query language,
//! and the configuration generator. Storage, HTTP and drivers build on these types;
//! this crate must never depend on them.

pub mod configuration;
pub mod installer;
pub mod ip;
pub mod model;
pub mod query;
pub mod validate;

pub use model::*;
pub use validate::{Email, Mac, ValidationError};
