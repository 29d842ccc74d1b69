//! Request extractors with DCImanager's error envelope.
//!
//! [`Body`] reads JSON whatever the `Content-Type`: the seed's own `curl -d` calls
//! send `application/x-www-form-urlencoded`, and billing modules copy them. A wrong
//! type names the field (`owner: invalid type ...`). A body is read whole and checked
//! before it is typed: exactly one JSON object, no control characters in its text
//! (single-line fields refuse line breaks too, in their validators). [`ListParams`]
//! parses the list query language.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use dcim_core::query::ListQuery;
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::json;

use crate::error::{ApiError, ErrorKind};

/// A JSON object body. An empty body reads as `{}`; anything else must be exactly one
/// JSON object (nothing after it), within the body limit, with no control character
/// in any string but tab and line breaks. Handlers that take no fields take
/// `Body<Empty>`, so a body they would ignore is still checked.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorKind::PayloadTooLarge, "the request body is too large")
            } else {
                ApiError::bad_request(format!("cannot read the request body: {rejection}"))
            }
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request("body: the request body must be a JSON object"));
        }
        check_framing_and_text(bytes)?;
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize(de) {
            Ok(v) => Ok(Body(v)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let (msg, value) = if inner.is_syntax() || inner.is_eof() {
                    (format!("the body is not valid JSON: {inner}"), json!({}))
                } else if path == "." {
                    (format!("body: {inner}"), json!({}))
                } else {
                    (format!("{path}: {inner}"), json!({ "field": path }))
                };
                Err(ApiError::bad_request(msg).with_value(value))
            }
        }
    }
}

/// The first pass over a body: one JSON value and nothing after it (RFC 8259 text, so
/// `{"owner":4} garbage` and `{..}{..}` are refused), and every string and key free of
/// control characters (a 422 naming the field).
fn check_framing_and_text(bytes: &[u8]) -> Result<(), ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let framed = serde_path_to_error::deserialize::<_, TextChecked>(&mut *de).map_err(|e| {
        // The field is the path down to the bad string; a bad key names the object
        // that holds it (the key itself is not echoed back).
        let mut field = String::new();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => field.push_str(&format!("[{index}]")),
                serde_path_to_error::Segment::Map { key } if !key.chars().any(char::is_control) => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(key);
                }
                _ => break,
            }
        }
        let inner = e.into_inner();
        if inner.is_data() {
            let field = if field.is_empty() { "body" } else { &field };
            ApiError::invalid(
                field,
                "must not contain control characters (NUL, C0 other than tab and line breaks, DEL)",
            )
        } else {
            ApiError::bad_request(format!("the body is not valid JSON: {inner}"))
        }
    });
    framed.and_then(|_| de.end().map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}"))))
}

/// Any JSON value, read only to check its strings (see [`check_framing_and_text`]).
struct TextChecked;

impl<'de> Deserialize<'de> for TextChecked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = TextChecked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TextChecked, E> {
        Ok(TextChecked)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TextChecked, E> {
        Ok(TextChecked)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TextChecked, E> {
        Ok(TextChecked)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TextChecked, E> {
        Ok(TextChecked)
    }

    fn visit_unit<E: de::Error>(self) -> Result<TextChecked, E> {
        Ok(TextChecked)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<TextChecked, E> {
        match dcim_core::validate::forbidden_control(s, true) {
            Some(c) => Err(E::custom(format_args!("control character U+{:04X}", u32::from(c)))),
            None => Ok(TextChecked),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextChecked, A::Error> {
        while seq.next_element::<TextChecked>()?.is_some() {}
        Ok(TextChecked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextChecked, A::Error> {
        while map.next_key::<TextChecked>()?.is_some() {
            map.next_value::<TextChecked>()?;
        }
        Ok(TextChecked)
    }
}

#[derive(Deserialize)]
struct RawList {
    #[serde(rename = "where")]
    filter: Option<String>,
    orderby: Option<String>,
    limit: Option<String>,
}

/// `where`, `orderby` and `limit`, parsed.
pub struct ListParams(pub ListQuery);

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(raw) = Query::<RawList>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(ErrorKind::BadQuery, format!("bad query string: {e}")))?;
        let q = ListQuery::parse(raw.filter.as_deref(), raw.orderby.as_deref(), raw.limit.as_deref())?;
        Ok(ListParams(q))
    }
}

/// An id in a body: an integer, or a string of digits as some billing modules send.
pub fn id_like<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IdLike {
        Int(i64),
        Str(String),
    }
    match IdLike::deserialize(d)? {
        IdLike::Int(i) => Ok(i),
        IdLike::Str(s) => s.trim().parse().map_err(|_| serde::de::Error::custom(format!("'{s}' is not an id"))),
    }
}

/// A field that may be absent (`None`), null (`Some(None)`) or set (`Some(Some(v))`).
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Path parameters, with a wrong one (`/server/abc`) answered in the error envelope.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| ApiError::bad_request(format!("bad path parameter: {}", e.body_text())))
    }
}

/// The client's address: the connection's peer, or, when the peer is one of the
/// configured `trusted_proxies`, the address that proxy put in `X-Forwarded-For` (see
/// [`client_address`]).
pub struct ClientIp(pub Option<std::net::IpAddr>);

/// The client address [`client_address`] found, in the request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(&parts.extensions)))
    }
}

/// The client address of a request: what [`client_address`] found, else the peer.
pub fn client_ip(ext: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    ext.get::<ClientAddr>()
        .map(|c| c.0)
        .or_else(|| ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip()))
}

/// The client behind a chain of proxies: `X-Forwarded-For` is read from its right end
/// (the entry the nearest proxy added) only while the hop that added it is trusted; the
/// first address not in `trusted` is the client. A peer that is not a trusted proxy is
/// the client itself, whatever the header says; an entry that is not an address stops
/// the walk at the last trusted hop.
pub fn forwarded_client(peer: std::net::IpAddr, xff: &[&str], trusted: &[ipnet::IpNet]) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = peer;
    if !is_trusted(&client) {
        return client;
    }
    for entry in xff.iter().flat_map(|h| h.split(',')).map(str::trim).rev() {
        let Ok(ip) = entry.parse::<std::net::IpAddr>() else { break };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// Middleware: records the client's address ([`ClientAddr`]) for the extractors, the
/// throttle and the audit trail.
pub async fn client_address(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(peer) = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip()) {
        let xff: Vec<&str> = req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        let ip = forwarded_client(peer, &xff, &state.cfg.trusted_proxies);
        req.extensions_mut().insert(ClientAddr(ip));
    }
    next.run(req).await
}

#[cfg(test)]
mod forwarded {
    use super::forwarded_client;

    #[test]
    fn only_trusted_hops_are_believed() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()];
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // No proxy: the header is anyone's to forge.
        assert_eq!(forwarded_client(ip("198.51.100.7"), &["203.0.113.9"], &trusted), ip("198.51.100.7"));
        // Through the proxy: the address it saw.
        assert_eq!(forwarded_client(ip("127.0.0.1"), &["203.0.113.9"], &trusted), ip("203.0.113.9"));
        // A forged entry on the left is not reached.
        assert_eq!(forwarded_client(ip("127.0.0.1"), &["1.2.3.4, 203.0.113.9"], &trusted), ip("203.0.113.9"));
        // Two trusted hops, several headers.
        assert_eq!(forwarded_client(ip("127.0.0.1"), &["203.0.113.9", "10.1.2.3"], &trusted), ip("203.0.113.9"));
        // Garbage stops at the last trusted hop; no header: the proxy itself.
        assert_eq!(forwarded_client(ip("127.0.0.1"), &["nonsense"], &trusted), ip("127.0.0.1"));
        assert_eq!(forwarded_client(ip("127.0.0.1"), &[], &trusted), ip("127.0.0.1"));
        assert_eq!(forwarded_client(ip("127.0.0.1"), &["203.0.113.9"], &[]), ip("127.0.0.1"), "none configured");
    }
}
