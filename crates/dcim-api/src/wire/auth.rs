//! Auth API v4 shapes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// A new session. `id` is the user id as a string, as DCImanager sends it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    pub id: String,
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct KeyLoginRequest {
    pub key: String,
}

/// A one-time login key, valid for one use within an hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyAnswer {
    pub id: String,
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Whoami {
    pub id: i64,
    pub email: String,
    pub roles: Vec<String>,
}
