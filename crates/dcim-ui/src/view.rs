//! What every page is made of: rendering a template, the top bar's data, the error
//! page and the login page. Knows no session and no store.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use dcim_api::error::ApiError;

/// Renders a template with the security headers every page carries (see `lib.rs`).
pub fn render<T: Template>(t: &T, status: StatusCode) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page failed to render; the server log has the details")
                .into_response()
        }
    }
}

/// The top bar's data.
pub struct Chrome {
    pub csrf: String,
    pub email: String,
    pub role: String,
    pub admin: bool,
    pub nav: &'static str,
    pub q: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Option<Chrome>,
    status: u16,
    msg: String,
}

/// An error as a page, with the status of the API's error table.
pub fn error_page(e: ApiError, chrome: Option<Chrome>) -> Response {
    let (status, _) = e.kind.status_and_code();
    let page = ErrorPage { chrome, status: status.as_u16(), msg: e.msg };
    render(&page, status)
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub next: String,
    pub error: String,
    pub email: String,
    /// The login form's double-submit token.
    pub form: String,
}

/// A refused form: which form, the field the API named, and its message, to show the
/// form again with the message beside it.
#[derive(Default)]
pub struct Refusal {
    pub form: String,
    pub field: String,
    pub error: String,
}

impl Refusal {
    /// Records `e` as the refusal of `form`; the answer's status is the API's.
    pub fn set(&mut self, form: &str, e: ApiError) -> StatusCode {
        let (status, _) = e.kind.status_and_code();
        self.form = form.to_owned();
        self.field = e.value.get("field").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
        self.error = e.msg;
        status
    }

    /// The message of `form` if it was the one refused, else "".
    pub fn msg(&self, form: &str) -> &str {
        if self.form == form { &self.error } else { "" }
    }

    /// Whether `field` of `form` is the one the refusal names.
    pub fn at(&self, form: &str, field: &str) -> bool {
        self.form == form && self.field == field
    }
}
