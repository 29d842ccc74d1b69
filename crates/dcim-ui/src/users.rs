//! Users for admins: the list with each user's server count, create, edit, block and
//! unblock, delete (refused by the store while the user owns servers), and the login
//! link: a one-time key URL for a customer, made by the API's own `issue_key` and
//! shown once on the page that made it, never stored in a form or a URL of the UI.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use dcim_api::AppState;
use dcim_api::error::{ApiError, ErrorKind};
use dcim_api::extract::{Body, Path};
use dcim_api::routes::{auth_v4, users as api};
use dcim_api::wire::Empty;
use dcim_api::wire::user::{NewUser, User, UserEdit};
use dcim_core::Role;
use dcim_store::ids::UserId;
use serde::Deserialize;

use crate::filter::{self, quote};
use crate::session::Ui;
use crate::shared::{Pager, answer, fail, query, show};
use crate::view::{Chrome, Refusal, render};

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct UserFilter {
    q: String,
    role: String,
    page: Option<u32>,
}

#[derive(Template)]
#[template(path = "users.html")]
struct Users {
    chrome: Chrome,
    f: UserFilter,
    rows: Vec<User>,
    pager: Pager,
    refusal: Refusal,
    /// What the refused create form held (never its password).
    new_email: String,
    new_name: String,
    new_role: String,
}

async fn users_page(ui: &Ui, st: &AppState, f: UserFilter) -> Result<Users, ApiError> {
    ui.caller.require_admin()?;
    let mut parts = vec![];
    if !f.q.trim().is_empty() {
        let like = quote(&format!("%{}%", f.q.trim()));
        parts.push(format!("(email CP {like} OR full_name CP {like})"));
    }
    if f.role.parse::<Role>().is_ok() {
        parts.push(format!("role EQ {}", quote(&f.role)));
    }
    let page_no = f.page.unwrap_or(1).max(1);
    let offset = (page_no - 1) * filter::PAGE;
    let p =
        st.store.list_users(&query(&parts.join(" AND "), "email asc", &format!("{offset},{}", filter::PAGE))?).await?;
    let rows: Vec<User> = p.items.into_iter().map(User::from).collect();
    let link = |n: u32| format!("/ui/users?q={}&role={}&page={n}", filter::encode(&f.q), filter::encode(&f.role));
    let pager = Pager::new(offset, rows.len(), p.size, page_no, link);
    Ok(Users {
        chrome: ui.chrome("users"),
        f,
        rows,
        pager,
        refusal: Refusal::default(),
        new_email: String::new(),
        new_name: String::new(),
        new_role: "@user".into(),
    })
}

/// `GET /ui/users`.
pub async fn users(ui: Ui, State(st): State<AppState>, Query(f): Query<UserFilter>) -> Response {
    show(&ui, users_page(&ui, &st, f)).await
}

/// Every field of the user forms.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UserForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    email: String,
    password: String,
    role: String,
    full_name: String,
    phone_number: String,
}

impl std::fmt::Debug for UserForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserForm").field("email", &self.email).field("role", &self.role).finish_non_exhaustive()
    }
}

/// `POST /ui/users`: a new user, then its page.
pub async fn create_user(ui: Ui, State(st): State<AppState>, headers: HeaderMap, Form(f): Form<UserForm>) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let b = NewUser {
        email: f.email.clone(),
        password: f.password,
        role: Some(f.role.clone()),
        full_name: f.full_name.clone(),
        phone_number: f.phone_number,
        vlans_per_user: None,
    };
    let done = api::create_user(ui.caller.clone(), State(st.clone()), Body(b)).await;
    let done = done.map(|id| format!("/ui/users/{}", id.id));
    answer(&ui, done, "create", users_page(&ui, &st, UserFilter::default()), |p| {
        (p.new_email, p.new_name, p.new_role) = (f.email, f.full_name, f.role);
        &mut p.refusal
    })
    .await
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    chrome: Chrome,
    u: User,
    admin: bool,
    servers_href: String,
    /// The login link just made, shown this once.
    link: String,
    refusal: Refusal,
}

async fn user_page(ui: &Ui, st: &AppState, id: UserId) -> Result<UserPage, ApiError> {
    ui.caller.require_admin()?;
    let row = st.store.get_user(id).await?;
    let admin = row.role == Role::Admin;
    let u = User::from(row);
    let servers_href = format!("/ui/servers?where={}", filter::encode(&format!("owner EQ {id}")));
    Ok(UserPage {
        chrome: ui.chrome("users"),
        u,
        admin,
        servers_href,
        link: String::new(),
        refusal: Refusal::default(),
    })
}

/// `GET /ui/users/{id}`.
pub async fn user(ui: Ui, State(st): State<AppState>, Path(id): Path<UserId>) -> Response {
    show(&ui, user_page(&ui, &st, id)).await
}

/// `https://host` of the request (`http` when dcim serves without TLS, which is when
/// its cookies are not `Secure`), for a link to copy out of the page.
/// The host is the `Host` header, or in HTTP/2 the request's `:authority`.
fn origin(headers: &HeaderMap, uri: &Uri, tls: bool) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)) {
        return String::new();
    }
    format!("{}://{host}", if tls { "https" } else { "http" })
}

/// `POST /ui/users/{id}/{action}`: `edit`, `block`, `unblock`, `delete`, or `key` (a
/// login link).
pub async fn user_action(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, action)): Path<(UserId, String)>,
    Form(f): Form<UserForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let (c, s) = (ui.caller.clone(), State(st.clone()));
    let page = format!("/ui/users/{id}");
    let done = match action.as_str() {
        "edit" => match st.store.get_user(id).await {
            Ok(before) => {
                let before = User::from(before);
                let role = f.role.trim();
                let b = UserEdit {
                    email: Some(f.email),
                    // Sent only when changed: a role change ends the user's sessions.
                    role: (!role.is_empty() && !before.roles.iter().any(|r| r == role)).then(|| role.to_owned()),
                    full_name: Some(f.full_name),
                    phone_number: Some(f.phone_number),
                    password: (!f.password.is_empty()).then_some(f.password),
                    vlans_per_user: None,
                    blocked: None,
                };
                api::edit_user(c, s, Path(id.get()), Body(b)).await.map(|_| page)
            }
            Err(e) => Err(e.into()),
        },
        "block" => api::block_user(c, s, Path(id.get()), Body(Empty {})).await.map(|_| page),
        "unblock" => api::unblock_user(c, s, Path(id.get()), Body(Empty {})).await.map(|_| page),
        "delete" => api::delete_user(c, s, Path(id.get()), Body(Empty {})).await.map(|_| "/ui/users".to_owned()),
        "key" => match auth_v4::issue_key(c, s, Path(id.to_string()), Body(Empty {})).await {
            Ok((_, k)) => {
                return match user_page(&ui, &st, id).await {
                    Ok(mut p) => {
                        p.link = format!("{}/auth/key-v4/{}", origin(&headers, &uri, st.cfg.secure_cookies), k.key);
                        render(&p, StatusCode::OK)
                    }
                    Err(e) => fail(e, &ui),
                };
            }
            Err(e) => Err(e),
        },
        _ => Err(ApiError::new(ErrorKind::NoHandler, format!("there is no action {action}"))),
    };
    answer(&ui, done, &action, user_page(&ui, &st, id), |p| &mut p.refusal).await
}
