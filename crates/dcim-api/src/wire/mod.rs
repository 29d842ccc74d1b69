//! The DCImanager 6 wire shapes, separate from the domain and storage types so
//! the contract cannot drift by accident: a change here is a change of the API,
//! and the snapshot tests show it.
//!
//! Field names, types and enum spellings follow the seed
//! (`tests/fixtures/seed/dcimanager-api-examples.txt`). What no stored data backs
//! yet is `null`, an empty list or an empty object, never an invented value.

pub mod audit;
pub mod auth;
pub mod inventory;
pub mod ip;
pub mod server;
pub mod site;
pub mod task;
pub mod user;
pub mod webhook;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"list": [...], "size": N}`: every list answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub list: Vec<T>,
    /// Rows matching `where`, before `limit`.
    pub size: i64,
}

impl<T> List<T> {
    pub fn from_page<R>(page: dcim_store::list::Page<R>, f: impl FnMut(R) -> T) -> Self {
        List { list: page.items.into_iter().map(f).collect(), size: page.size }
    }
}

/// `{"id": N}`: what a create or an edit answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Id {
    pub id: i64,
}

/// An empty JSON object: answers with nothing to say, and the body of requests that
/// take no fields (any fields given are ignored, as DCImanager does).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Empty {}
