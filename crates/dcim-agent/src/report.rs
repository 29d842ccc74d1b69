//! Talking to the server: `POST {callback}/{task}/report` with the task's secret
//! as a Bearer token and `{"kind": ..., "data": {...}}` as the body (the server's
//! `agent_report` route), and `GET` of the boot's answer data.
//!
//! A blocking client (ureq, rustls) keeps the static binary small and free of an
//! async runtime. Every request has a deadline and a report is retried a few times
//! with backoff, so a flaky link neither loses a report nor keeps the machine on
//! forever; answers the server gave on purpose (4xx) are not retried. The secret
//! is never logged.

use std::time::Duration;

use anyhow::{Context, bail};
use dcim_core::ReportKind;
use serde_json::{Value, json};

use crate::cmdline::Params;
use crate::say;

/// One request's deadline.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts per report; the pauses between them are 1, 2, 4, 8 s.
const ATTEMPTS: u32 = 5;

pub struct Reporter {
    http: ureq::Agent,
    url: String,
    auth: String,
    /// Pause before the first retry (shortened by the tests).
    backoff: Duration,
}

impl Reporter {
    pub fn new(p: &Params) -> Self {
        let http = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .user_agent(concat!("dcim-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Reporter { http, url: p.report_url(), auth: format!("Bearer {}", p.secret), backoff: Duration::from_secs(1) }
    }

    /// Sends one report; retries transport errors and 5xx answers.
    pub fn send(&self, kind: ReportKind, data: Value) -> anyhow::Result<()> {
        let body = json!({"kind": kind, "data": data}).to_string();
        let mut pause = self.backoff;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                say(&format!("report {kind}: attempt {} failed ({last}); retrying in {pause:?}", attempt - 1));
                std::thread::sleep(pause);
                pause *= 2;
            }
            let sent = self
                .http
                .post(&self.url)
                .header("Authorization", &self.auth)
                .header("Content-Type", "application/json")
                .send(body.as_bytes());
            match sent {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(mut r) => {
                    let status = r.status();
                    let text = r.body_mut().read_to_string().unwrap_or_default();
                    last = format!("HTTP {status}: {}", text.trim());
                    if status.is_client_error() {
                        bail!("the server refused the {kind} report: {last}");
                    }
                }
                Err(e) => last = e.to_string(),
            }
        }
        bail!("could not send the {kind} report to {} after {ATTEMPTS} attempts: {last}", self.url)
    }

    /// `GET url` with the secret; the JSON answer.
    pub fn fetch_json(&self, url: &str) -> anyhow::Result<Value> {
        let mut r =
            self.http.get(url).header("Authorization", &self.auth).call().with_context(|| format!("GET {url}"))?;
        let status = r.status();
        let text = r.body_mut().read_to_string().with_context(|| format!("reading {url}"))?;
        anyhow::ensure!(status.is_success(), "GET {url}: HTTP {status}: {}", text.trim());
        serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// (path, authorization, body) of each request.
    type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

    /// Answers each request with the next status of `statuses`, records it.
    fn server(statuses: Vec<u16>) -> (String, Seen) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(vec![]));
        let rec = seen.clone();
        std::thread::spawn(move || {
            for (s, status) in l.incoming().zip(statuses) {
                let mut s = s.unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                let (mut len, mut auth) = (0, String::new());
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().unwrap(),
                        "authorization" => auth = v.trim().to_owned(),
                        _ => {}
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                rec.lock().unwrap().push((path, auth, String::from_utf8(body).unwrap()));
                let answer = r#"{"boot":{"mode":"diag","clear_hdd":"full"}}"#;
                write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                )
                .unwrap();
            }
        });
        (base, seen)
    }

    fn reporter(base: &str) -> Reporter {
        let p = Params::parse(&format!("dcim.callback={base}/agent/v1/task dcim.task=9 dcim.secret=s3")).unwrap();
        Reporter { backoff: Duration::from_millis(10), ..Reporter::new(&p) }
    }

    #[test]
    fn reports_with_the_secret_and_retries_server_errors() {
        let (base, seen) = server(vec![503, 200]);
        reporter(&base).send(ReportKind::Progress, json!({"step": "x"})).unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].0, "/agent/v1/task/9/report");
        assert_eq!(seen[1].1, "Bearer s3");
        let v: Value = serde_json::from_str(&seen[1].2).unwrap();
        assert_eq!(v, json!({"kind": "progress", "data": {"step": "x"}}));
    }

    #[test]
    fn a_refusal_is_not_retried_and_answers_are_read() {
        let (base, seen) = server(vec![404, 200]);
        let r = reporter(&base);
        let e = r.send(ReportKind::Hardware, json!({})).unwrap_err();
        assert!(e.to_string().contains("404"), "{e}");
        let a = r.fetch_json(&format!("{base}/boot/52-54-00-00-00-01/answer")).unwrap();
        assert_eq!(a["boot"]["clear_hdd"], "full");
        assert_eq!(seen.lock().unwrap()[1].1, "Bearer s3");
    }
}
