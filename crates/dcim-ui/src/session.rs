//! Who is looking at a page: the UI's own session cookie, its CSRF token, login and
//! logout.
//!
//! A UI session is an ordinary session token (the same table, the same idle expiry
//! and logout as the API's), carried in the `dcim_ui` cookie: HttpOnly,
//! SameSite=Strict, path `/ui`. Pages that only read also accept the API's `ses6`
//! cookie, which the one-time key link sets with SameSite=Lax: a customer arriving
//! from a billing panel (a cross-site navigation, on which a Strict cookie is not
//! sent yet) is logged in on the first page, and the `dcim_ui` cookie is set there.
//!
//! Every write needs the session's CSRF token, in the form's `_csrf` field or the
//! `x-csrf-token` header that htmx sends: SHA-256 of a label and the session token,
//! so it needs no storage, differs per session and cannot be computed from outside.
//! The login form has its own double-submit token (a cookie and a field), so a
//! foreign page cannot log a browser in to another account.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use dcim_api::AppState;
use dcim_api::auth::{COOKIE, Caller, UI_COOKIE, caller_for_token, cookie, hash_secret, new_secret};
use sha2::{Digest, Sha256};

/// The cookie of the login form's double-submit token.
const LOGIN_COOKIE: &str = "dcim_login";

/// The logged-in caller of a page.
pub struct Ui {
    pub caller: Caller,
    /// This session's CSRF token, for forms and htmx requests.
    pub csrf: String,
    token: String,
}

/// The CSRF token of a session token.
pub fn csrf_of(token: &str) -> String {
    hex::encode(Sha256::digest(format!("dcim-ui-csrf\0{token}").as_bytes()))
}

/// Equal strings, compared in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session token a request carries for the UI.
fn ui_token<'a>(method: &Method, h: &'a HeaderMap) -> Option<&'a str> {
    cookie(h, UI_COOKIE).or_else(|| matches!(*method, Method::GET | Method::HEAD).then(|| cookie(h, COOKIE)).flatten())
}

/// Where a request without a session goes: the login page, then back.
fn to_login(parts: &Parts) -> Response {
    let back = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/ui/");
    let to = format!("/ui/login?next={}", crate::filter::encode(back));
    if parts.headers.contains_key("hx-request") {
        // htmx follows this header with a full navigation.
        return ([("hx-redirect", to)], "").into_response();
    }
    Redirect::to(&to).into_response()
}

impl FromRequestParts<AppState> for Ui {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = ui_token(&parts.method, &parts.headers).map(str::to_owned) else {
            return Err(to_login(parts));
        };
        match caller_for_token(st, &token).await {
            Ok(caller) => Ok(Ui { caller, csrf: csrf_of(&token), token }),
            Err(e) if e.kind == dcim_api::error::ErrorKind::Unauthorized => Err(to_login(parts)),
            Err(e) => Err(crate::view::error_page(e, None)),
        }
    }
}

impl Ui {
    /// The top bar of a page in section `nav`.
    pub fn chrome(&self, nav: &'static str) -> crate::view::Chrome {
        crate::view::Chrome {
            csrf: self.csrf.clone(),
            email: self.caller.email.to_string(),
            role: self.caller.role.as_str().to_owned(),
            admin: self.caller.is_admin(),
            nav,
            q: String::new(),
        }
    }

    /// Refuses a write whose CSRF token (form field or header) is not this session's.
    pub fn check_csrf(&self, headers: &HeaderMap, field: &str) -> Result<(), Box<Response>> {
        let given = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or(field);
        if same(given, &self.csrf) {
            Ok(())
        } else {
            let e = dcim_api::error::ApiError::new(
                dcim_api::error::ErrorKind::XsrfMismatch,
                "the form is out of date or came from another site (CSRF token); reload the page and try again",
            );
            Err(Box::new(crate::view::error_page(e, Some(self.chrome("")))))
        }
    }
}

/// After a page read through the `ses6` cookie, sets the UI's own cookie from it.
pub async fn adopt_api_cookie(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let adopt = cookie(req.headers(), UI_COOKIE).is_none().then(|| cookie(req.headers(), COOKIE)).flatten();
    let adopt = adopt.map(str::to_owned);
    let mut r = next.run(req).await;
    if let Some(token) = adopt
        && r.status().is_success()
        && let Ok(v) = HeaderValue::from_str(&session_cookie(&token, st.cfg.secure_cookies))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

fn session_cookie(token: &str, secure: bool) -> String {
    let s = if secure { "; Secure" } else { "" };
    format!("{UI_COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict{s}")
}

fn cleared(name: &str, path: &str) -> String {
    format!("{name}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Strict")
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct LoginQuery {
    pub next: String,
}

/// Only a path of the UI itself is a place to go back to after login.
fn safe_next(next: &str) -> &str {
    if next.starts_with("/ui/") && !next.starts_with("/ui//") && !next.contains('\\') { next } else { "/ui/" }
}

/// `GET /ui/login`.
pub async fn login_page(
    State(st): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    let token = new_secret();
    let secure = st.cfg.secure_cookies;
    let page = crate::view::LoginPage {
        next: safe_next(&q.next).to_owned(),
        error: String::new(),
        email: String::new(),
        form: token.clone(),
    };
    login_answer(page, &token, secure, axum::http::StatusCode::OK)
}

fn login_answer(
    page: crate::view::LoginPage,
    form_token: &str,
    secure: bool,
    status: axum::http::StatusCode,
) -> Response {
    let s = if secure { "; Secure" } else { "" };
    let c = format!("{LOGIN_COOKIE}={form_token}; Path=/ui/login; HttpOnly; SameSite=Strict{s}");
    let mut r = crate::view::render(&page, status);
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default, rename = "_login")]
    form: String,
    /// The TOTP code or a reserve code, for an account with two-factor authentication.
    #[serde(default)]
    code: String,
}

/// `POST /ui/login`: the API's own login (its throttling included), then the cookie.
pub async fn login(
    State(st): State<AppState>,
    ip: dcim_api::extract::ClientIp,
    headers: HeaderMap,
    axum::Form(f): axum::Form<LoginForm>,
) -> Response {
    let secure = st.cfg.secure_cookies;
    let retry = |error: String, email: String| {
        let token = new_secret();
        let page = crate::view::LoginPage { next: safe_next(&f.next).to_owned(), error, email, form: token.clone() };
        login_answer(page, &token, secure, axum::http::StatusCode::UNAUTHORIZED)
    };
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same(c, &f.form)) {
        return retry("The login form expired; please try again.".into(), f.email.clone());
    }
    let req =
        dcim_api::wire::auth::LoginRequest { email: f.email.clone(), password: f.password.clone(), confirmed: None };
    match dcim_api::routes::auth_v4::login(State(st.clone()), ip, dcim_api::extract::Body(req)).await {
        Ok((_, axum::Json(t))) if !t.confirmed => {
            // The API's second step, with the code given in the same form.
            let code = f.code.trim();
            let (code, reserve_code) = match code.parse::<i64>() {
                Ok(n) if code.len() == 6 => (Some(n), None),
                _ if code.is_empty() => (None, None),
                _ => (None, Some(code.to_owned())),
            };
            if code.is_none() && reserve_code.is_none() {
                let _ = st.store.delete_session(&hash_secret(&t.token)).await;
                return retry("This account needs its two-factor code.".into(), f.email.clone());
            }
            let req = dcim_api::wire::auth::ConfirmRequest { token: t.token.clone(), code, reserve_code };
            match dcim_api::routes::auth_v4::confirm_token(State(st.clone()), dcim_api::extract::Body(req)).await {
                Ok(_) => logged_in(&t.token, &f.next, secure),
                Err(_) => {
                    let _ = st.store.delete_session(&hash_secret(&t.token)).await;
                    retry("Wrong or already used two-factor code.".into(), f.email.clone())
                }
            }
        }
        Ok((_, axum::Json(t))) => logged_in(&t.token, &f.next, secure),
        Err(e) => {
            let msg = match e.kind {
                dcim_api::error::ErrorKind::BadCredentials => "Wrong e-mail or password.".to_owned(),
                dcim_api::error::ErrorKind::Forbidden => "This account is blocked.".to_owned(),
                _ => e.msg,
            };
            retry(msg, f.email.clone())
        }
    }
}

/// The answer to a login that succeeded: the session cookie, and on to `next`.
fn logged_in(token: &str, next: &str, secure: bool) -> Response {
    let mut r = Redirect::to(safe_next(next)).into_response();
    for c in [session_cookie(token, secure), cleared(LOGIN_COOKIE, "/ui/login")] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct CsrfForm {
    #[serde(rename = "_csrf")]
    pub csrf: String,
}

/// `POST /ui/logout`: the session ends (for the API too), both cookies go.
pub async fn logout(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let hash = hash_secret(&ui.token);
    st.sessions.forget(Some(&hash), None);
    if let Err(e) = st.store.delete_session(&hash).await {
        return crate::view::error_page(e.into(), None);
    }
    let mut r = Redirect::to("/ui/login").into_response();
    for c in [cleared(UI_COOKIE, "/ui"), format!("{COOKIE}=; Path=/; Max-Age=0")] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_redirects() {
        assert_ne!(csrf_of("a"), csrf_of("b"));
        assert_eq!(csrf_of("a").len(), 64);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        assert_eq!(safe_next("/ui/servers?x=1"), "/ui/servers?x=1");
        for bad in ["https://evil.example/", "//evil.example/", "/ui//evil.example", "/api/x", "/ui\\x"] {
            assert_eq!(safe_next(bad), "/ui/", "{bad}");
        }
    }
}
