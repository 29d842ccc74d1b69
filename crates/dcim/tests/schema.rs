//! The two migration sets cannot drift: a fresh SQLite file and a fresh PostgreSQL
//! schema, each migrated by `dcim-store`, have the same tables, and each table the same
//! columns in the same order with the same nullability and the same kind of value
//! (integer, text, real, bytes). A migration added to one set and not the other, or a
//! column made nullable on one side only, fails here.

mod common;

use std::collections::BTreeMap;

use sqlx::{Connection, Row};

/// A column: its name, whether it may hold NULL, and its kind.
type Column = (String, bool, &'static str);

/// The kind of value a declared type holds.
fn kind(declared: &str) -> &'static str {
    let t = declared.to_ascii_lowercase();
    if t.contains("int") || t == "boolean" {
        "integer"
    } else if t.contains("char") || t.contains("text") || t == "uuid" || t.contains("json") {
        "text"
    } else if t.contains("real") || t.contains("double") || t.contains("float") || t.contains("numeric") {
        "real"
    } else if t.contains("blob") || t == "bytea" {
        "bytes"
    } else {
        "other"
    }
}

async fn sqlite_schema() -> BTreeMap<String, Vec<Column>> {
    let dir = common::tempdir::Dir::new();
    let url = format!("sqlite://{}?mode=rwc", dir.0.join("dcim.db").display());
    let store = dcim_store::Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name NOT LIKE '_sqlx_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info('{t}')"))).fetch_all(&mut conn).await.unwrap();
        let cols = rows
            .iter()
            .map(|r| {
                let declared: String = r.get("type");
                let notnull: i64 = r.get("notnull");
                // An INTEGER PRIMARY KEY is the rowid: never NULL, whatever notnull says.
                let pk: i64 = r.get("pk");
                (r.get::<String, _>("name"), notnull == 0 && pk == 0, kind(&declared))
            })
            .collect();
        out.insert(t, cols);
    }
    out
}

async fn postgres_schema() -> BTreeMap<String, Vec<Column>> {
    let (schema, url) = common::fresh_postgres_schema().await;
    let store = dcim_store::Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(&common::postgres_base_url()).await.unwrap();
    let rows = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, is_nullable::text AS n, data_type::text AS d \
         FROM information_schema.columns WHERE table_schema = $1 AND table_name NOT LIKE '\\_sqlx\\_%' \
         ORDER BY table_name, ordinal_position",
    )
    .bind(&schema)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out: BTreeMap<String, Vec<Column>> = BTreeMap::new();
    for r in rows {
        let d: String = r.get("d");
        out.entry(r.get("t")).or_default().push((r.get("c"), r.get::<String, _>("n") == "YES", kind(&d)));
    }
    common::drop_postgres_schema(&schema).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_migrate_to_the_same_schema() {
    let lite = sqlite_schema().await;
    let pg = postgres_schema().await;
    assert!(lite.len() >= 20, "the schema has its tables: {:?}", lite.keys());
    let columns: usize = lite.values().map(Vec::len).sum();
    assert!(columns >= 150, "the tables have their columns ({columns})");
    let names = |m: &BTreeMap<String, Vec<Column>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&lite), names(&pg), "the same tables");
    let mut differences = vec![];
    for (table, cols) in &lite {
        let other = &pg[table];
        if cols != other {
            differences.push(format!("{table}:\n  SQLite     {cols:?}\n  PostgreSQL {other:?}"));
        }
    }
    assert!(differences.is_empty(), "columns differ:\n{}", differences.join("\n"));
    // Every kind is known: a new column type is mapped here on purpose.
    for (table, cols) in &lite {
        for (name, _, k) in cols {
            assert_ne!(*k, "other", "{table}.{name}: a type this test does not know");
        }
    }
}
