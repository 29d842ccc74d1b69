//! The API's list queries: a `where` string quoted, a path with its query string, an
//! object's id from its id or its name, and a list fetched whole, page by page.

use serde_json::{Value, json};

use crate::{Ctx, Failure};

/// A quoted string of the list language.
pub fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The id of an object given as its id or as its `field` (a name, an e-mail), looked up
/// in the list at `path`; `what` names the kind in the error.
pub async fn id_of(ctx: &Ctx, path: &str, field: &str, given: &str, what: &str) -> Result<i64, Failure> {
    if let Ok(id) = given.parse::<i64>() {
        return Ok(id);
    }
    let v = ctx.api.get(&with_query(path, &[("where", format!("{field} EQ {}", quoted(given)))])).await?;
    v["list"][0]["id"].as_i64().ok_or_else(|| Failure::Usage(format!("no {what} '{given}'")))
}

/// A path with its query string.
pub fn with_query(path: &str, q: &[(&str, String)]) -> String {
    let mut url = reqwest::Url::parse("http://x").expect("a constant URL");
    url.set_path(path);
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in q {
            pairs.append_pair(k, v);
        }
    }
    match url.query() {
        Some(qs) if !qs.is_empty() => format!("{path}?{qs}"),
        _ => path.to_owned(),
    }
}

/// A list of `path`: every row the filter selects (page by page), or one page.
pub async fn list_of(
    ctx: &Ctx,
    path: &str,
    expr: Option<String>,
    sort: Option<&str>,
    limit: Option<u64>,
    all: bool,
) -> Result<Value, Failure> {
    let mut q = vec![];
    if let Some(e) = &expr {
        q.push(("where", e.clone()));
    }
    if let Some(s) = sort {
        q.push(("orderby", s.to_owned()));
    }
    if !all {
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        return ctx.api.get(&with_query(path, &q)).await;
    }
    const PAGE: u64 = 1000;
    let mut items = vec![];
    let mut size = 0;
    loop {
        let mut page_q = q.clone();
        page_q.push(("limit", format!("{},{PAGE}", items.len())));
        let v = ctx.api.get(&with_query(path, &page_q)).await?;
        size = v["size"].as_i64().unwrap_or(size);
        let got = v["list"].as_array().cloned().unwrap_or_default();
        let n = got.len();
        items.extend(got);
        if n < PAGE as usize || items.len() as i64 >= size {
            break;
        }
    }
    Ok(json!({"list": items, "size": size}))
}
