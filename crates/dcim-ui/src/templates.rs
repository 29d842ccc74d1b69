//! OS and diagnostics templates for admins: the list, a new template, a template's
//! page to edit it (type is fixed once made, as in the API), and delete, refused by
//! the store while a server or a task uses the template. A template boots an image
//! (its URL and SHA-256) or an installer (kickstart, preseed or autoinstall with its
//! kernel, initrd and an optional answer-file template), never both: the API decides,
//! and its message is shown by the form.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use dcim_api::AppState;
use dcim_api::error::{ApiError, ErrorKind};
use dcim_api::extract::{Body, Path};
use dcim_api::routes::inventory as inv;
use dcim_api::wire::Empty;
use dcim_api::wire::inventory::{NewOsTemplate, OsTemplate, OsTemplateEdit};
use serde::Deserialize;

use crate::session::Ui;
use crate::shared::{answer, query, show};
use crate::view::{Chrome, Refusal};

/// Every field of the template forms.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default)]
pub struct TemplateForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    kind: String,
    tags: String,
    efi: Option<String>,
    image_url: String,
    image_sha256: String,
    installer: String,
    installer_kernel: String,
    installer_initrd: String,
    installer_template: String,
}

fn opt(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

impl TemplateForm {
    fn tags(&self) -> Vec<String> {
        self.tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
    }

    fn of(t: &OsTemplate) -> TemplateForm {
        TemplateForm {
            csrf: String::new(),
            name: t.name.clone(),
            kind: t.kind.to_string(),
            tags: t.tags.join(", "),
            efi: t.efi.then(|| "yes".to_owned()),
            image_url: t.image_url.clone().unwrap_or_default(),
            image_sha256: t.image_sha256.clone().unwrap_or_default(),
            installer: t.installer.clone().unwrap_or_default(),
            installer_kernel: t.installer_kernel.clone().unwrap_or_default(),
            installer_initrd: t.installer_initrd.clone().unwrap_or_default(),
            installer_template: t.installer_template.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "os_templates.html")]
struct Templates {
    chrome: Chrome,
    rows: Vec<OsTemplate>,
    f: TemplateForm,
    refusal: Refusal,
}

async fn list_page(ui: &Ui, st: &AppState, f: TemplateForm) -> Result<Templates, ApiError> {
    ui.caller.require_admin()?;
    let rows = st
        .store
        .list_os_templates(&query("", "name asc", "")?)
        .await?
        .items
        .into_iter()
        .map(OsTemplate::from)
        .collect();
    Ok(Templates { chrome: ui.chrome("templates"), rows, f, refusal: Refusal::default() })
}

/// `GET /ui/templates`.
pub async fn templates(ui: Ui, State(st): State<AppState>) -> Response {
    let f = TemplateForm { kind: "os".into(), efi: Some("yes".into()), ..TemplateForm::default() };
    show(&ui, list_page(&ui, &st, f)).await
}

/// `POST /ui/templates`: a new template, then its page.
pub async fn create_template(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<TemplateForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let b = NewOsTemplate {
        name: f.name.clone(),
        kind: f.kind.clone(),
        tags: f.tags(),
        efi: f.efi.is_some(),
        image_url: opt(&f.image_url),
        image_sha256: opt(&f.image_sha256),
        installer: opt(&f.installer),
        installer_kernel: opt(&f.installer_kernel),
        installer_initrd: opt(&f.installer_initrd),
        installer_template: opt(&f.installer_template),
    };
    let done = inv::create_os_template(ui.caller.clone(), State(st.clone()), Body(b)).await;
    let done = done.map(|(_, id)| format!("/ui/templates/{}", id.id));
    answer(&ui, done, "create", list_page(&ui, &st, f), |p| &mut p.refusal).await
}

#[derive(Template)]
#[template(path = "os_template.html")]
struct TemplatePage {
    chrome: Chrome,
    id: i64,
    f: TemplateForm,
    /// Servers installed with it.
    used_by: i64,
    used_href: String,
    refusal: Refusal,
}

async fn template_page(ui: &Ui, st: &AppState, id: i64) -> Result<TemplatePage, ApiError> {
    ui.caller.require_admin()?;
    let t = OsTemplate::from(st.store.get_os_template(id).await?);
    let w = format!("os_template.id EQ {id}");
    let used_by = st.store.list_servers(&query(&w, "", "0,0")?, &ui.caller.server_scope()).await?.size;
    Ok(TemplatePage {
        chrome: ui.chrome("templates"),
        id,
        f: TemplateForm::of(&t),
        used_by,
        used_href: format!("/ui/servers?where={}", crate::filter::encode(&w)),
        refusal: Refusal::default(),
    })
}

/// `GET /ui/templates/{id}`.
pub async fn template(ui: Ui, State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    show(&ui, template_page(&ui, &st, id)).await
}

/// `POST /ui/templates/{id}/{action}`: `edit` or `delete`.
pub async fn template_action(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<TemplateForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let (c, s) = (ui.caller.clone(), State(st.clone()));
    let typed = f.clone();
    let done = match action.as_str() {
        "edit" => {
            // The form holds every field: an empty one clears it.
            let b = OsTemplateEdit {
                name: Some(f.name.clone()),
                tags: Some(f.tags()),
                efi: Some(f.efi.is_some()),
                image_url: Some(opt(&f.image_url)),
                image_sha256: Some(opt(&f.image_sha256)),
                installer: Some(opt(&f.installer)),
                installer_kernel: Some(opt(&f.installer_kernel)),
                installer_initrd: Some(opt(&f.installer_initrd)),
                installer_template: Some(opt(&f.installer_template)),
            };
            inv::edit_os_template(c, s, Path(id), Body(b)).await.map(|_| format!("/ui/templates/{id}"))
        }
        "delete" => inv::delete_os_template(c, s, Path(id), Body(Empty {})).await.map(|_| "/ui/templates".to_owned()),
        _ => Err(ApiError::new(ErrorKind::NoHandler, format!("there is no action {action}"))),
    };
    answer(&ui, done, &action, template_page(&ui, &st, id), |p| {
        if action == "edit" {
            // Shown again as typed; the type is fixed.
            p.f = TemplateForm { kind: p.f.kind.clone(), ..typed };
        }
        &mut p.refusal
    })
    .await
}
