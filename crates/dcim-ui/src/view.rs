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
