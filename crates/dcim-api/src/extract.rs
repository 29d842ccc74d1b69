//! Request extractors with DCImanager's error envelope.
//!
//! [`Body`] reads JSON whatever the `Content-Type`: the seed's own `curl -d` calls
//! send `application/x-www-form-urlencoded`, and billing modules copy them. A wrong
//! type names the field (`owner: invalid type ...`). [`ListParams`] parses the list
//! query language.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use dcim_core::query::ListQuery;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use crate::error::{ApiError, ErrorKind};

/// A JSON object body. An empty body reads as `{}`.
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

/// The peer address of the connection, when the server recorded it.
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ci = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(ClientIp(ci.map(|c| c.0.ip())))
    }
}
