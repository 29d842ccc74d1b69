//! What every page module uses: a page or its error page, the answer to a form's post,
//! a list query from a page's filter, the pager of a list, and a choice of a select.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use dcim_api::error::{ApiError, ErrorKind};
use dcim_core::query::ListQuery;

use crate::session::Ui;
use crate::view::{error_page, render};

/// An error as a page with the top bar of `ui`.
pub(crate) fn fail(e: ApiError, ui: &Ui) -> Response {
    error_page(e, Some(ui.chrome("")))
}

/// A page, or the error page when it cannot be made.
pub(crate) async fn show<P: Template>(
    ui: &Ui,
    page: impl std::future::Future<Output = Result<P, ApiError>>,
) -> Response {
    match page.await {
        Ok(p) => render(&p, StatusCode::OK),
        Err(e) => fail(e, ui),
    }
}

/// The answer to a form's post: a redirect to the place `done` names when the API took
/// it; when the API refused it, the page again (`again`) with the refusal beside form
/// `form` (`refusal` finds where the page keeps it, and may keep what was typed) and
/// the API's status; the error page when there is no page to show the form on (not
/// found, no such action, not allowed).
pub(crate) async fn answer<P: Template>(
    ui: &Ui,
    done: Result<String, ApiError>,
    form: &str,
    again: impl std::future::Future<Output = Result<P, ApiError>>,
    refusal: impl FnOnce(&mut P) -> &mut crate::view::Refusal,
) -> Response {
    match done {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::NoHandler | ErrorKind::Forbidden) => fail(e, ui),
        Err(e) => match again.await {
            Ok(mut p) => {
                let status = refusal(&mut p).set(form, e);
                render(&p, status)
            }
            Err(e) => fail(e, ui),
        },
    }
}

pub(crate) fn query(w: &str, orderby: &str, limit: &str) -> Result<ListQuery, ApiError> {
    let w = (!w.is_empty()).then_some(w);
    let o = (!orderby.is_empty()).then_some(orderby);
    let l = (!limit.is_empty()).then_some(limit);
    Ok(ListQuery::parse(w, o, l)?)
}

/// "first–last of size" of a list page, and the links to the pages beside it.
#[derive(Default)]
pub struct Pager {
    pub size: i64,
    pub first: i64,
    pub last: i64,
    pub prev: String,
    pub next: String,
}

impl Pager {
    pub(crate) fn new(offset: u32, shown: usize, size: i64, page: u32, link: impl Fn(u32) -> String) -> Pager {
        let last = i64::from(offset) + shown as i64;
        Pager {
            size,
            first: if shown == 0 { 0 } else { i64::from(offset) + 1 },
            last,
            prev: if page > 1 { link(page - 1) } else { String::new() },
            next: if last < size { link(page + 1) } else { String::new() },
        }
    }
}

pub struct Choice {
    pub value: String,
    pub label: String,
}
