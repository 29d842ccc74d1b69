//! Request extractors with DCImanager's error envelope.
//!
//! [`Body`] reads JSON whatever the `Content-Type`: the seed's own `curl -d` calls
//! send `application/x-www-form-urlencoded`, and billing modules copy them. A wrong
//! type names the field (`owner: invalid type ...`). A body is read whole and checked
//! in three passes: exactly one JSON object with no key twice, then the typed fields
//! (fields dcim does not know are ignored, as DCImanager's clients send more than it
//! reads), then no control characters in the text of any field it reads (single-line
//! fields refuse line breaks too, in their validators). [`ListParams`] parses the list
//! query language.
//!
//! The passes are written here: serde_ignored names the fields a type did not read, but
//! no crate reads a parsed document for serde the way the API wants (an object where a
//! struct is, `4.0` as an integer, a key once), so [`Strict`] and the first pass do.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use dcim_core::query::ListQuery;
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ErrorKind};

/// A JSON object body. No body reads as `{}`; anything else must be exactly one
/// JSON object (nothing after it, no key twice), within the body limit, with no
/// control character but tab and line breaks in any string dcim reads. Handlers that
/// take no fields take `Body<Empty>`, so a body they would ignore is still checked.
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
        // No body at all is `{}`; anything else is JSON (a lone line break is not).
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request("body: the request body must be a JSON object"));
        }
        let value = parse_object(bytes)?;
        let mut ignored: HashSet<Vec<Step>> = HashSet::new();
        let typed = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(Strict(&value), &mut |path| {
            ignored.insert(steps(&path));
        }));
        match typed {
            Ok(v) => {
                check_text(&value, &mut Vec::new(), &ignored)?;
                Ok(Body(v))
            }
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let (msg, value) = if path == "." {
                    (format!("body: {inner}"), json!({}))
                } else {
                    (format!("{path}: {inner}"), json!({ "field": path }))
                };
                Err(ApiError::bad_request(msg).with_value(value))
            }
        }
    }
}

/// One step down a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Index(usize),
}

/// `a.b[0].c`, or `body` for the document itself; a key with a control character
/// ends the name (it is not echoed back).
fn field_name<'a>(steps: impl IntoIterator<Item = &'a Step>) -> String {
    let mut field = String::new();
    for step in steps {
        match step {
            Step::Index(i) => field.push_str(&format!("[{i}]")),
            Step::Key(k) if !k.chars().any(char::is_control) => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(k);
            }
            Step::Key(_) => break,
        }
    }
    if field.is_empty() { "body".into() } else { field }
}

/// The first pass: one JSON value and nothing after it (RFC 8259 text, so
/// `{"owner":4} garbage` and `{..}{..}` are refused), no object with a key twice (two
/// parsers may keep different ones), and numbers as JSON Schema reads them: `4.0` is
/// the integer 4, so an id from a client that writes every number as a float is
/// still an id.
fn parse_object(bytes: &[u8]) -> Result<Value, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize::<_, Checked>(&mut *de).map_err(|e| {
        let steps: Vec<Step> = e
            .path()
            .iter()
            .map_while(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                _ => None,
            })
            .collect();
        let inner = e.into_inner();
        if inner.is_data() {
            let field = field_name(&steps);
            ApiError::bad_request(format!("{field}: {inner}")).with_value(json!({ "field": field }))
        } else {
            ApiError::bad_request(format!("the body is not valid JSON: {inner}"))
        }
    })?;
    de.end().map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok(parsed.0)
}

/// The path of an ignored field as steps (`Some` and newtype wrappers are not steps
/// in the JSON).
fn steps(path: &serde_ignored::Path) -> Vec<Step> {
    use serde_ignored::Path;
    let mut out = match path {
        Path::Root => return Vec::new(),
        Path::Seq { parent, .. }
        | Path::Map { parent, .. }
        | Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => steps(parent),
    };
    match path {
        Path::Seq { index, .. } => out.push(Step::Index(*index)),
        Path::Map { key, .. } => out.push(Step::Key(key.clone())),
        _ => {}
    }
    out
}

/// The third pass: no control character (but tab and line breaks) in a string or key
/// that dcim read; a 422 names the field. Fields it ignored are not read, so their
/// text is none of its business.
fn check_text(v: &Value, path: &mut Vec<Step>, ignored: &HashSet<Vec<Step>>) -> Result<(), ApiError> {
    let bad = |path: &[Step]| {
        ApiError::invalid(
            &field_name(path),
            "must not contain control characters (NUL, C0 other than tab and line breaks, DEL)",
        )
    };
    match v {
        Value::String(s) if dcim_core::validate::forbidden_control(s, true).is_some() => return Err(bad(path)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                if !ignored.contains(path) {
                    check_text(item, path, ignored)?;
                }
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                path.push(Step::Key(k.clone()));
                if !ignored.contains(path) {
                    if dcim_core::validate::forbidden_control(k, true).is_some() {
                        return Err(bad(&path[..path.len() - 1]));
                    }
                    check_text(item, path, ignored)?;
                }
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// Reads `T` from JSON already parsed (a field the route keeps raw, such as a server's
/// hardware), as [`Body`] reads its fields: an object where a struct is expected.
pub fn typed<T: DeserializeOwned>(v: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(Strict(v))
}

/// The second pass reads the typed fields from the parsed document through this
/// deserializer rather than serde_json's own: serde's derive would take a JSON array
/// for a struct (its fields by position, `{"snmp": ["public"]}`), and the API's
/// objects are objects. Everything else reads as from `serde_json::Value`.
struct Strict<'a>(&'a Value);

impl<'de> Deserializer<'de> for Strict<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(StrictSeq(items.iter())),
            Value::Object(map) => visitor.visit_map(StrictMap { iter: map.iter(), value: None }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(unexpected(other), &"a JSON object")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        use serde::de::IntoDeserializer;
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            other => Err(de::Error::invalid_type(unexpected(other), &"one of the spellings as a string")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        seq tuple tuple_struct map identifier ignored_any
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("a number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

struct StrictSeq<'a>(std::slice::Iter<'a, Value>);

impl<'de> SeqAccess<'de> for StrictSeq<'de> {
    type Error = serde_json::Error;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Self::Error> {
        self.0.next().map(|v| seed.deserialize(Strict(v))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct StrictMap<'a> {
    iter: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
}

impl<'de> MapAccess<'de> for StrictMap<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(de::value::BorrowedStrDeserializer::<serde_json::Error>::new(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        let v = self.value.take().ok_or_else(|| de::Error::custom("a value without its key"))?;
        seed.deserialize(Strict(v))
    }
}

/// A JSON value read by [`parse_object`].
struct Checked(Value);

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Checked, E> {
        Ok(Checked(Value::Bool(b)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Checked, E> {
        Ok(Checked(n.into()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Checked, E> {
        Ok(Checked(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Checked, E> {
        // Within ±2^53 a float with no fraction is exactly that integer.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        if n.fract() == 0.0 && n.abs() <= EXACT {
            return Ok(Checked((n as i64).into()));
        }
        Ok(Checked(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Checked, E> {
        Ok(Checked(Value::String(s.to_owned())))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Checked, E> {
        Ok(Checked(Value::String(s)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        let mut items = Vec::new();
        while let Some(Checked(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Checked(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let Checked(v) = map.next_value()?;
            if out.contains_key(&k) {
                return Err(de::Error::custom(format_args!("the key '{}' is given twice", k.escape_debug())));
            }
            out.insert(k, v);
        }
        Ok(Checked(Value::Object(out)))
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

/// The list query parameters as the OpenAPI document shows them on every list
/// operation (their grammar is in docs/API.md; [`crate::doc_rules`] gives `limit` a
/// pattern).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "a description for the OpenAPI document; ListParams reads the query")]
pub struct ListQueryDoc {
    /// A filter: `field OP value` joined by `AND`, `OR`, `NOT` and parentheses; `OP`
    /// is `EQ`, `NE`, `GT`, `LT`, `GE`, `LE`, `CP` (LIKE with `%`), or `IS [NOT] null`;
    /// strings in single quotes. E.g. `(owner_email IS null) AND is_new EQ false`.
    #[param(rename = "where")]
    filter: Option<String>,
    /// Sort keys: `field [asc|desc]`, comma-separated, e.g. `name asc, id desc`.
    orderby: Option<String>,
    /// `count` or `offset,count`, e.g. `10` or `20,10`.
    limit: Option<String>,
}

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
    struct IdVisitor;
    impl Visitor<'_> for IdVisitor {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an id (an integer, or a string of digits)")
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<i64, E> {
            Ok(n)
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<i64, E> {
            i64::try_from(n).map_err(|_| E::custom(format_args!("{n} is not an id")))
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<i64, E> {
            s.trim().parse().map_err(|_| E::custom(format_args!("'{s}' is not an id")))
        }
    }
    d.deserialize_any(IdVisitor)
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
    record_client(&state, &mut req);
    next.run(req).await
}

/// [`client_address`]' work on a request.
pub fn record_client(state: &crate::AppState, req: &mut axum::extract::Request) {
    if let Some(peer) = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip()) {
        let xff: Vec<&str> = req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        let ip = forwarded_client(peer, &xff, &state.cfg.trusted_proxies);
        req.extensions_mut().insert(ClientAddr(ip));
    }
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

#[cfg(test)]
mod strict {
    use serde_json::json;

    use super::typed;

    #[test]
    fn objects_are_objects() {
        use dcim_core::configuration::HardwareInfo;
        // serde's derive would read an array as a struct's fields by position.
        assert!(typed::<HardwareInfo>(&json!({"cpu": [null, 2]})).is_err());
        assert!(typed::<HardwareInfo>(&json!([null, null])).is_err());
        // An enum is one of its spellings.
        assert!(typed::<HardwareInfo>(&json!({"disks": [{"type": {}}]})).is_err());
        assert!(typed::<HardwareInfo>(&json!({"disks": [{"type": "ssd"}]})).is_ok());
        let hw = typed::<HardwareInfo>(&json!({"cpu": {"sockets": 2}, "disks": null, "x": [1]})).unwrap();
        assert_eq!(hw.cpu.unwrap().sockets, Some(2));
    }
}
