//! Secrets at rest: BMC passwords, SNMP access data (communities, v3 keys), webhook
//! secrets, TOTP secrets and the calls waiting for a remote site are kept sealed with XChaCha20-Poly1305 (RustCrypto's
//! `chacha20poly1305`) under a 256-bit key that lives outside the database (a key file
//! or the environment, see the `dcim` binary). The database alone reveals none of them.
//!
//! A sealed value is `sealed:v1:KEYID:HEX`, HEX being a random 24-byte nonce and the
//! ciphertext with its tag; KEYID names the key (the first 8 bytes of a SHA-256 of it),
//! and the column's name is the associated data, so a value copied to another column
//! does not open. The database records the id of the key its secrets are sealed with
//! (`store_meta.secret_key_id`): a process started with another key stops at start-up
//! with both ids named, and never sends a BMC what a wrong key would make of a password.
//! Values written before sealing existed are sealed in place at start-up
//! ([`Store::adopt_key`]); [`Store::rotate_key`] re-seals every value under a new key
//! in one transaction.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::{Result, Store, StoreError};

/// The start of every sealed value.
pub const PREFIX: &str = "sealed:v1:";

/// Every sealed column: (table, column). The column's `table.column` is the AEAD's
/// associated data.
pub const COLUMNS: &[(&str, &str)] = &[
    ("servers", "ipmi_password"),
    ("switches", "snmp"),
    ("pdus", "snmp"),
    ("webhooks", "secret"),
    ("users", "totp_secret"),
    ("site_calls", "body"),
];

pub(crate) const BMC_PASSWORD: &str = "servers.ipmi_password";
pub(crate) const WEBHOOK_SECRET: &str = "webhooks.secret";
pub(crate) const TOTP_SECRET: &str = "users.totp_secret";

/// The SNMP access data's column of a switch or PDU table.
pub(crate) fn snmp_column(table: &str) -> String {
    format!("{table}.snmp")
}

/// A key: 32 bytes.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id())
    }
}

impl SecretKey {
    /// A new random key (the operating system's generator, through `rand`).
    pub fn generate() -> SecretKey {
        SecretKey(rand::random())
    }

    /// A key written as 64 hexadecimal digits (surrounding white space ignored).
    pub fn parse(text: &str) -> std::result::Result<SecretKey, String> {
        let bytes = hex::decode(text.trim()).map_err(|_| "a secret key is 64 hexadecimal digits".to_owned())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| "a secret key is 64 hexadecimal digits".to_owned())?;
        Ok(SecretKey(key))
    }

    /// The key as [`SecretKey::parse`] reads it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The key's name: 16 hexadecimal digits that say which key sealed a value
    /// without telling anything of the key.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"dcim secret key id\0");
        h.update(self.0);
        hex::encode(&h.finalize()[..8])
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(&self.0).expect("a 32-byte key")
    }

    /// `clear` sealed for `column` (`table.column`).
    pub fn seal(&self, column: &str, clear: &str) -> String {
        let nonce: [u8; 24] = rand::random();
        let sealed = self
            .cipher()
            .encrypt(&XNonce::from(nonce), Payload { msg: clear.as_bytes(), aad: column.as_bytes() })
            .expect("sealing cannot fail for a value this size");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("{PREFIX}{}:{}", self.id(), hex::encode(out))
    }

    /// A value of `column` as stored: opened when sealed, as it is when written before
    /// sealing existed.
    pub fn open(&self, column: &str, stored: &str) -> Result<String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_owned()) };
        let (id, body) = rest.split_once(':').ok_or_else(|| broken(column))?;
        if id != self.id() {
            return Err(StoreError::Config(format!(
                "{column} is sealed with secret key {id}, this process has key {}: every dcim of a database needs \
                 the same secret key",
                self.id()
            )));
        }
        let bytes = hex::decode(body).map_err(|_| broken(column))?;
        if bytes.len() < 24 {
            return Err(broken(column));
        }
        let (nonce, sealed) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| broken(column))?;
        let clear = self
            .cipher()
            .decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad: column.as_bytes() })
            .map_err(|_| broken(column))?;
        String::from_utf8(clear).map_err(|_| broken(column))
    }
}

fn broken(column: &str) -> StoreError {
    StoreError::Config(format!("a sealed value of {column} does not open: it was changed outside dcim"))
}

impl Store {
    /// A secret derived from the key for `label` (HMAC-SHA256, hex): the same in every
    /// process of the database, and unknown without the key. None without a key.
    pub fn derive_secret(&self, label: &str) -> Option<String> {
        use hmac::{Hmac, Mac};
        let key = self.key.as_ref()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("any key length");
        mac.update(b"dcim derived secret\0");
        mac.update(label.as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }

    /// `clear` as it is stored in `column`: sealed when this store has a key.
    pub(crate) fn seal(&self, column: &str, clear: &str) -> String {
        match &self.key {
            Some(k) => k.seal(column, clear),
            None => clear.to_owned(),
        }
    }

    /// A stored value of `column`, opened.
    pub(crate) fn open(&self, column: &str, stored: &str) -> Result<String> {
        match &self.key {
            Some(k) => k.open(column, stored),
            None if stored.starts_with(PREFIX) => {
                Err(StoreError::Config(format!("{column} is sealed and this process was given no secret key")))
            }
            None => Ok(stored.to_owned()),
        }
    }

    pub(crate) fn open_opt(&self, column: &str, stored: Option<String>) -> Result<Option<String>> {
        stored.map(|s| self.open(column, &s)).transpose()
    }

    /// The id of the key the database's secrets are sealed with, if one was adopted.
    pub async fn sealing_key_id(&self) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM store_meta WHERE name = 'secret_key_id'")
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.0))
    }

    /// Makes this store's key the database's (the first time), refuses another key
    /// than the database's, and seals the values still in clear. Returns how many it
    /// sealed.
    pub async fn adopt_key(&self) -> Result<usize> {
        let key = self.key.clone().ok_or_else(|| StoreError::Config("no secret key to adopt".into()))?;
        let mut tx = self.write().await?;
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM store_meta WHERE name = 'secret_key_id'")
            .fetch_optional(&mut *tx)
            .await?;
        match row {
            Some((id,)) if id != key.id() => {
                return Err(StoreError::Config(format!(
                    "the database's secrets are sealed with secret key {id}, and this process was given key {}: \
                     give every dcim of this database the same key",
                    key.id()
                )));
            }
            Some(_) => {}
            None => {
                sqlx::query("INSERT INTO store_meta (name, value) VALUES ('secret_key_id', $1)")
                    .bind(key.id())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let mut sealed = 0;
        for (table, column) in COLUMNS {
            let sql = format!(
                "SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL AND {column} NOT LIKE '{PREFIX}%'"
            );
            let rows: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *tx).await?;
            let update = format!("UPDATE {table} SET {column} = $1 WHERE id = $2");
            for (id, clear) in rows {
                sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                    .bind(key.seal(&format!("{table}.{column}"), &clear))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sealed += 1;
            }
        }
        tx.commit().await?;
        if sealed > 0 {
            self.forget_old_versions().await?;
        }
        Ok(sealed)
    }

    /// After values in clear were sealed: their old versions out of the files too. On
    /// SQLite the page's freed space is zeroed (`secure_delete`) and the WAL, which
    /// still holds the old pages, is checkpointed and emptied; on PostgreSQL the dead
    /// row versions are dropped by rewriting the tables (`VACUUM FULL`, once, at the
    /// start that sealed them).
    async fn forget_old_versions(&self) -> Result<()> {
        match self.backend {
            crate::Backend::Sqlite => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(self.pool()).await?;
            }
            crate::Backend::Postgres => {
                let tables: Vec<&str> = COLUMNS.iter().map(|(t, _)| *t).collect();
                let sql = format!("VACUUM FULL {}", tables.join(", "));
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(self.pool()).await?;
            }
        }
        Ok(())
    }

    /// Re-seals every sealed value under `new` in one transaction and records `new` as
    /// the database's key. Returns how many values it re-sealed. This store keeps its
    /// old key: open the store again with the new one.
    pub async fn rotate_key(&self, new: &SecretKey) -> Result<usize> {
        let old = self.key.clone().ok_or_else(|| StoreError::Config("no secret key to rotate from".into()))?;
        let mut tx = self.write().await?;
        let mut n = 0;
        for (table, column) in COLUMNS {
            let name = format!("{table}.{column}");
            let sql = format!("SELECT id, {column} FROM {table} WHERE {column} LIKE '{PREFIX}%'");
            let rows: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *tx).await?;
            let update = format!("UPDATE {table} SET {column} = $1 WHERE id = $2");
            for (id, stored) in rows {
                let clear = old.open(&name, &stored)?;
                sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                    .bind(new.seal(&name, &clear))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                n += 1;
            }
        }
        sqlx::query("UPDATE store_meta SET value = $1 WHERE name = 'secret_key_id'")
            .bind(new.id())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_column() {
        let k = SecretKey::generate();
        let s = k.seal("servers.ipmi_password", "hunter2");
        assert!(s.starts_with(PREFIX) && !s.contains("hunter2"), "{s}");
        assert_ne!(s, k.seal("servers.ipmi_password", "hunter2"), "a fresh nonce each time");
        assert_eq!(k.open("servers.ipmi_password", &s).unwrap(), "hunter2");
        assert!(k.open("webhooks.secret", &s).is_err(), "another column");
        let other = SecretKey::generate();
        let e = other.open("servers.ipmi_password", &s).unwrap_err().to_string();
        assert!(e.contains(&k.id()) && e.contains(&other.id()), "{e}");
        let mut tampered = s.clone();
        tampered.pop();
        tampered.push(if s.ends_with('0') { '1' } else { '0' });
        assert!(k.open("servers.ipmi_password", &tampered).is_err());
        assert_eq!(k.open("servers.ipmi_password", "clear").unwrap(), "clear", "written before sealing");
        assert_eq!(SecretKey::parse(&k.to_hex()).unwrap().id(), k.id());
        assert!(SecretKey::parse("abcd").is_err());
    }
}
