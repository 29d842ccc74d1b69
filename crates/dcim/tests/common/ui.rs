//! The web UI over HTTP as a browser sends it: pages read with the UI's session
//! cookie, forms posted url-encoded, and the values tests pick out of a page.

use reqwest::StatusCode;

use super::TestServer;

/// A form body as a browser sends it.
pub trait FormOf {
    fn form_of(self, pairs: &[(&str, &str)]) -> Self;
}

impl FormOf for reqwest::RequestBuilder {
    fn form_of(self, pairs: &[(&str, &str)]) -> Self {
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", super::enc(k), super::enc(v))).collect();
        self.header("Content-Type", "application/x-www-form-urlencoded").body(body.join("&"))
    }
}

pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

pub async fn page(s: &TestServer, token: &str, path: &str) -> Page {
    let r = s.client.get(s.url(path)).header("Cookie", format!("dcim_ui={token}")).send().await.unwrap();
    Page { status: r.status(), headers: r.headers().clone(), body: r.text().await.unwrap() }
}

pub async fn post_form(s: &TestServer, token: &str, path: &str, form: &[(&str, &str)]) -> Page {
    let r = s.client.post(s.url(path)).header("Cookie", format!("dcim_ui={token}")).form_of(form).send().await.unwrap();
    Page { status: r.status(), headers: r.headers().clone(), body: r.text().await.unwrap() }
}

/// The value of the first `name="NAME" value="..."` of a page.
pub fn field(body: &str, name: &str) -> String {
    let at = body.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name} in {body}"));
    let rest = &body[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The server ids a list page shows.
pub fn ids(body: &str) -> Vec<i64> {
    body.match_indices("<tr data-id=\"")
        .map(|(i, _)| body[i + 13..].split('"').next().unwrap().parse().unwrap())
        .collect()
}
