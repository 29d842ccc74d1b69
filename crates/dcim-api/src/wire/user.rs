//! `/dci/v3/user` shapes.

use dcim_store::users::UserRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user as the seed lists it, plus its contact fields and whether it is blocked.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub server_count: i64,
    /// `["@admin"]` or `["@user"]` (the seed prints the array as `[@user]`).
    pub roles: Vec<String>,
    pub vlans_per_user: i64,
    pub full_name: String,
    pub phone_number: String,
    pub blocked: bool,
}

impl From<UserRow> for User {
    fn from(u: UserRow) -> Self {
        User {
            roles: vec![u.role.as_str().to_owned()],
            id: u.id.get(),
            email: u.email,
            server_count: u.server_count,
            vlans_per_user: u.vlans_per_user,
            full_name: u.full_name,
            phone_number: u.phone_number,
            blocked: u.blocked,
        }
    }
}

/// The seed's "Adding a user" body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    pub email: String,
    pub password: String,
    /// `@admin` or `@user`; `@user` when absent.
    pub role: Option<String>,
    #[serde(default)]
    pub full_name: String,
    #[serde(default)]
    pub phone_number: String,
    pub vlans_per_user: Option<i64>,
}

/// An edit: only the fields to change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserEdit {
    pub email: Option<String>,
    pub password: Option<String>,
    pub role: Option<String>,
    pub full_name: Option<String>,
    pub phone_number: Option<String>,
    pub vlans_per_user: Option<i64>,
    pub blocked: Option<bool>,
}
