//! Ids of what the engine passes around, as types of their own, so that a task id cannot
//! be given where a server id is wanted. They are `i64` in the database and in JSON.
//! And [`Flag`], which reads a 0/1 column as a `bool`.

use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The number, for the wire.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl From<i64> for $name {
            fn from(n: i64) -> Self {
                $name(n)
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                v.as_i64().map($name)
            }
        }

        impl From<$name> for serde_json::Value {
            fn from(id: $name) -> Self {
                id.0.into()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id!(
    /// A server's id.
    ServerId
);
id!(
    /// A task's id.
    TaskId
);
id!(
    /// An IP address row's id.
    IpId
);
id!(
    /// A user's id.
    UserId
);

/// A 0/1 integer column read as a `bool`: `#[sqlx(try_from = "Flag")]` on a `bool`
/// field. Both schemas store flags as integers, and sqlx's `Any` driver decodes a `bool`
/// only from a boolean column.
#[derive(Debug, Clone, Copy, sqlx::Type)]
#[sqlx(transparent)]
pub struct Flag(i64);

impl From<Flag> for bool {
    fn from(f: Flag) -> bool {
        f.0 != 0
    }
}
