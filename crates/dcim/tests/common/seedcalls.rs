//! The seed's curl lines, read from the fixture copy of DCImanager's "Examples of API
//! use" page: method, URL, headers, body and the JSON example of the answer.

use serde_json::Value;

pub const SEED: &str = include_str!("../fixtures/dcimanager-api-examples.txt");
pub const SEED_TOKEN: &str = "E6900A56BE7DF0FB28ED7BE7";

/// One curl line of the seed with the JSON example that follows it.
#[derive(Debug)]
pub struct SeedCall {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub example: Option<Value>,
}

/// The text between the quote at `start` and its closing quote.
fn quoted(s: &str, start: usize) -> Option<(String, usize)> {
    let q = s[start..].chars().next()?;
    let end = s[start + 1..].find(q)? + start + 1;
    Some((s[start + 1..end].to_owned(), end + 1))
}

fn parse_curl(line: &str) -> SeedCall {
    let mut call = SeedCall { method: "GET".into(), url: String::new(), headers: vec![], body: None, example: None };
    let mut i = 0;
    while i < line.len() {
        let rest = &line[i..];
        if let Some(r) = rest.strip_prefix("-X ") {
            call.method = r.split_whitespace().next().unwrap().to_owned();
            i += 3 + call.method.len();
        } else if rest.starts_with("-H '") {
            let (h, next) = quoted(line, i + 3).unwrap();
            let (k, v) = h.split_once(':').unwrap();
            call.headers.push((k.trim().to_owned(), v.trim().to_owned()));
            i = next;
        } else if rest.starts_with("-d '") {
            // The IP allocation example closes its body with `"` instead of `'`.
            let body = &line[i + 4..];
            let end = body.find('\'').or_else(|| body.find("\" |")).unwrap();
            call.body = Some(body[..end].to_owned());
            i += 4 + end + 1;
        } else if rest.starts_with("'https://") && call.url.is_empty() {
            let (u, next) = quoted(line, i).unwrap();
            call.url = u;
            i = next;
        } else {
            i += rest.chars().next().unwrap().len_utf8();
        }
    }
    call
}

/// The balanced `{...}` block that starts the first line beginning with `{` after `from`.
fn json_after(text: &str, from: usize) -> Option<Value> {
    let start = from + text[from..].find("\n{")? + 1;
    let mut depth = 0;
    for (j, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return serde_json::from_str(&text[start..start + j + 1]).ok();
                }
            }
            _ => {}
        }
    }
    None
}

pub fn seed_calls() -> Vec<SeedCall> {
    let mut calls = vec![];
    let lines: Vec<(usize, &str)> = SEED
        .lines()
        .scan(0usize, |pos, l| {
            let at = *pos;
            *pos += l.len() + 1;
            Some((at, l))
        })
        .collect();
    for (at, l) in lines {
        if l.starts_with("curl ") {
            let mut c = parse_curl(l);
            let next_curl = SEED[at + 1..].find("\ncurl ").map(|p| p + at + 1).unwrap_or(SEED.len());
            let marker = SEED[at..next_curl].find("will be delivered in return");
            c.example = marker.and_then(|m| json_after(&SEED[..next_curl], at + m));
            calls.push(c);
        }
    }
    calls
}
