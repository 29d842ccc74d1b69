//! The error table: every error the API returns, with its HTTP status and its
//! DCImanager-style code, rendered as `{"error":{"code","msg","value"}}`.
//!
//! `docs/API.md` lists the same table; a test keeps the two in step.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dcim_store::StoreError;
use serde_json::{Value, json};

/// The kinds of error, each with one status and one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No session, or a session that expired or was logged out.
    Unauthorized,
    /// The wrong e-mail or password, or a wrong second factor.
    BadCredentials,
    /// The token of a user with two-factor authentication, not yet confirmed by a code.
    SecondFactor,
    /// The caller's role may not do this.
    Forbidden,
    /// A cookie-authenticated POST or DELETE without a matching `x-xsrf-token`.
    XsrfMismatch,
    /// Too many failed logins for this account or address.
    Throttled,
    /// Too many requests with one token: its rate limit.
    RateLimited,
    /// The body is not JSON, or a field has the wrong type or is missing.
    BadRequest,
    /// `where`, `orderby` or `limit` cannot be understood.
    BadQuery,
    /// A well-formed value that is not acceptable (an invalid e-mail, an unknown enum value).
    InvalidValue,
    /// No such object, or one the caller may not see.
    NotFound,
    /// No such route.
    NoHandler,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The request conflicts with the current state (owned server, taken port, duplicate name).
    Conflict,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The feature needs a driver this build does not have yet.
    NotImplemented,
    /// The database or another dependency is down.
    Unavailable,
    /// A bug or an unexpected failure; details are in the server log.
    Internal,
}

impl ErrorKind {
    /// The table: (kind, HTTP status, DCImanager-style code).
    pub const TABLE: &'static [(ErrorKind, u16, i64)] = &[
        (ErrorKind::Unauthorized, 401, 1000),
        (ErrorKind::BadCredentials, 401, 1001),
        (ErrorKind::SecondFactor, 401, 1005),
        (ErrorKind::Forbidden, 403, 1002),
        (ErrorKind::XsrfMismatch, 403, 1003),
        (ErrorKind::Throttled, 429, 1004),
        (ErrorKind::RateLimited, 429, 1005),
        (ErrorKind::BadRequest, 400, 2000),
        (ErrorKind::BadQuery, 400, 2001),
        (ErrorKind::InvalidValue, 422, 2002),
        (ErrorKind::PayloadTooLarge, 413, 2003),
        (ErrorKind::NotFound, 404, 3000),
        (ErrorKind::NoHandler, 404, 1106),
        (ErrorKind::MethodNotAllowed, 405, 1107),
        (ErrorKind::Conflict, 409, 4000),
        (ErrorKind::NotImplemented, 501, 5001),
        (ErrorKind::Unavailable, 503, 5003),
        (ErrorKind::Internal, 500, 5000),
    ];

    pub fn status_and_code(self) -> (StatusCode, i64) {
        let (_, status, code) =
            Self::TABLE.iter().find(|(k, _, _)| *k == self).copied().expect("every kind is in TABLE");
        (StatusCode::from_u16(status).expect("valid status"), code)
    }
}

/// An error answer: kind, message and a `value` object with details.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub msg: String,
    pub value: Value,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        ApiError { kind, msg: msg.into(), value: json!({}) }
    }

    pub fn with_value(mut self, value: Value) -> Self {
        self.value = value;
        self
    }

    pub fn unauthorized(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, msg)
    }

    pub fn forbidden() -> Self {
        Self::new(ErrorKind::Forbidden, "this action needs the @admin role")
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, msg)
    }

    /// An unacceptable value of `field`.
    pub fn invalid(field: &str, msg: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::InvalidValue, format!("{field}: {msg}")).with_value(json!({ "field": field }))
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what} {id} not found"))
            .with_value(json!({ "object": what, "id": id.to_string() }))
    }

    pub fn conflict(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, msg)
    }

    /// An internal error whose cause is already in the log.
    pub fn internal() -> Self {
        Self::new(ErrorKind::Internal, "internal error; the server log has the details")
    }

    /// An internal error with its cause: logged once here, inside the request's span
    /// (so with its request id), and never sent; the answer says only that the log has
    /// the details.
    pub fn internal_because(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::internal()
    }
}

impl From<dcim_core::ValidationError> for ApiError {
    fn from(e: dcim_core::ValidationError) -> Self {
        ApiError::invalid(&e.field, e.message)
    }
}

impl From<dcim_core::query::QueryError> for ApiError {
    fn from(e: dcim_core::query::QueryError) -> Self {
        ApiError::new(ErrorKind::BadQuery, e.to_string())
            .with_value(json!({ "param": e.param, "position": e.position }))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what, id } => ApiError::not_found(what, id),
            StoreError::Conflict(msg) => ApiError::conflict(msg),
            StoreError::Query { param, message, position } => {
                ApiError::new(ErrorKind::BadQuery, format!("{param}: {message}"))
                    .with_value(json!({ "param": param, "position": position }))
            }
            StoreError::Unavailable(cause) => {
                tracing::error!(error = %cause, "database unavailable");
                ApiError::new(ErrorKind::Unavailable, "the database is unavailable; retry shortly")
            }
            other => {
                tracing::error!(error = ?other, "storage failure");
                ApiError::internal()
            }
        }
    }
}

/// The code and message of an error answer, kept on the response for the audit trail.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub code: i64,
    pub msg: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.kind.status_and_code();
        let info = ErrorInfo { code, msg: self.msg.clone() };
        let body = json!({ "error": { "code": code, "msg": self.msg, "value": self.value } });
        let mut r = (status, axum::Json(body)).into_response();
        // A 429 says when to come back in the header too.
        if let Some(secs) = self.value.get("retry_after").and_then(serde_json::Value::as_u64) {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        r.extensions_mut().insert(info);
        r
    }
}
