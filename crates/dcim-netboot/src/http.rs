//! The HTTP side of a network boot: the per-MAC iPXE script, the agent's answer data,
//! and the boot files (kernel, initramfs, images).
//!
//! The script is the only place a boot's secret leaves dcim before the agent uses it,
//! so it is served only while the boot is prepared (404 otherwise, which makes iPXE
//! fall through to the next boot device). Answer data additionally needs the secret.
//! Files are static and the same for every machine; they carry no secret.
//!
//! A boot whose answer carries an `installer` (an installer-based OS template) boots
//! that installer's kernel and initrd from their URLs instead of the agent, pointed at
//! the rendered answer file served here, also only with the secret:
//! `/boot/{mac}/installer?secret=S` (kickstart `inst.ks=`, preseed `url=`), and for
//! autoinstall's NoCloud data source, which appends file names to its seed URL,
//! `/boot/{mac}/installer/{S}/user-data` and `.../meta-data`. The installer itself
//! reports the end of the install: the answer file's last command posts `installed`
//! to the task's callback with curl.

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::services::ServeDir;

use crate::boots::{EventKind, PreparedBoot, mac_hyphens};
use crate::{Netboot, NetbootConfig, mode_name, parse_mac};
use dcim_drivers::BootMode;

pub(crate) fn router(nb: Netboot) -> Router {
    let files = Router::new()
        .fallback_service(ServeDir::new(&nb.cfg.boot_files_dir))
        .layer(middleware::from_fn_with_state(nb.clone(), record_file));
    Router::new()
        .route("/boot/{script}", get(get_boot_script))
        .route("/boot/{mac}/answer", get(get_boot_answer))
        .route("/boot/{mac}/installer", get(get_installer_answer))
        .route("/boot/{mac}/installer/{secret}/{file}", get(get_installer_seed))
        .nest("/files", files)
        .with_state(nb)
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no boot is prepared for this machine\n").into_response()
}

/// `GET /boot/{mac}.ipxe`: load the agent with this boot's task, secret and callback.
async fn get_boot_script(State(nb): State<Netboot>, Path(script): Path<String>) -> Response {
    let Some(mac) = script.strip_suffix(".ipxe").and_then(|m| parse_mac(m).ok()) else {
        return not_found();
    };
    let Some(boot) = nb.boots.get(&mac) else {
        nb.events.push(EventKind::Script { mac, found: false });
        tracing::info!(%mac, "iPXE script asked for by a machine with no prepared boot");
        return not_found();
    };
    nb.events.push(EventKind::Script { mac, found: true });
    let c = &nb.cfg;
    let base = &c.http_base;
    if let Some(script) = installer_script(&nb, &mac, &boot) {
        return text(script);
    }
    let mut args = format!(
        "dcim.callback={} dcim.task={} dcim.secret={} dcim.mode={} dcim.answer={base}/boot/{}/answer",
        boot.callback,
        boot.task_id,
        boot.secret,
        mode_name(&boot.mode),
        mac_hyphens(&mac),
    );
    if let BootMode::Diag { clear_hdd } | BootMode::Wipe { clear_hdd } = &boot.mode {
        args.push_str(&format!(" dcim.clear_hdd={clear_hdd}"));
    }
    let title = format!("task {} ({}) for {mac}", boot.task_id, mode_name(&boot.mode));
    let kernel = format!("{base}/files/{}", c.kernel);
    text(chain_script(&title, &kernel, &format!("{base}/files/{}", c.initrd), &with_kernel_args(c, &args)))
}

/// A plain-text answer that no cache keeps (scripts and answer files carry secrets).
fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

#[derive(serde::Deserialize)]
struct SecretQuery {
    secret: Option<String>,
}

/// `GET /boot/{mac}/answer`: the boot's answer data, for the agent holding its secret
/// (`Authorization: Bearer SECRET` or `?secret=`).
async fn get_boot_answer(
    State(nb): State<Netboot>,
    Path(mac): Path<String>,
    Query(q): Query<SecretQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(boot) = parse_mac(&mac).ok().and_then(|m| nb.boots.get(&m)) else {
        return not_found();
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let given = bearer.or(q.secret);
    if given.as_deref() != Some(boot.secret.as_str()) {
        return (StatusCode::FORBIDDEN, "wrong or missing secret\n").into_response();
    }
    let body = serde_json::json!({
        "task_id": boot.task_id,
        "callback": boot.callback,
        "boot": boot.mode,
        "answer": boot.answer,
    });
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

/// The installer of a boot: kind, kernel URL, initrd URL, rendered answer file.
fn installer_of(answer: &serde_json::Value) -> Option<(&str, &str, &str, &str)> {
    let i = &answer["installer"];
    Some((i["kind"].as_str()?, i["kernel"].as_str()?, i["initrd"].as_str()?, i["answer_file"].as_str()?))
}

/// The iPXE script booting an installer, if the boot has one.
fn installer_script(nb: &Netboot, mac: &dcim_core::Mac, boot: &PreparedBoot) -> Option<String> {
    let (kind, kernel, initrd, _) = installer_of(&boot.answer)?;
    let c = &nb.cfg;
    let url = format!("{}/boot/{}/installer", c.http_base, mac_hyphens(mac));
    let answer_arg = match kind {
        "kickstart" => format!("inst.ks={url}?secret={}", boot.secret),
        "preseed" => format!("auto=true priority=critical url={url}?secret={}", boot.secret),
        _ => format!("autoinstall ds=nocloud-net;s={url}/{}/", boot.secret),
    };
    let title = format!("task {} ({kind} installer) for {mac}", boot.task_id);
    Some(chain_script(&title, kernel, initrd, &with_kernel_args(c, &answer_arg)))
}

/// The configured kernel arguments, then `own`.
fn with_kernel_args(c: &NetbootConfig, own: &str) -> String {
    if c.kernel_args.is_empty() { own.to_owned() } else { format!("{} {own}", c.kernel_args) }
}

/// An iPXE script that boots `kernel` with `initrd` (named by its URL's last part) and
/// `args`, and says so on the console when a download or the boot fails.
fn chain_script(title: &str, kernel: &str, initrd: &str, args: &str) -> String {
    let name = initrd.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("initrd");
    format!(
        "#!ipxe\n\
         echo dcim: {title}\n\
         kernel {kernel} initrd={name} {args} || goto failed\n\
         initrd --name {name} {initrd} || goto failed\n\
         boot || goto failed\n\
         :failed\n\
         echo dcim: network boot failed\n\
         sleep 5\n\
         exit 1\n"
    )
}

/// `GET /boot/{mac}/installer?secret=S`: the rendered answer file (kickstart, preseed,
/// or autoinstall's user-data).
async fn get_installer_answer(
    State(nb): State<Netboot>,
    Path(mac): Path<String>,
    Query(q): Query<SecretQuery>,
) -> Response {
    installer_file(&nb, &mac, q.secret.as_deref(), "user-data")
}

/// `GET /boot/{mac}/installer/{secret}/{user-data|meta-data}`: autoinstall's NoCloud seed.
async fn get_installer_seed(
    State(nb): State<Netboot>,
    Path((mac, secret, file)): Path<(String, String, String)>,
) -> Response {
    installer_file(&nb, &mac, Some(&secret), &file)
}

fn installer_file(nb: &Netboot, mac: &str, secret: Option<&str>, file: &str) -> Response {
    let Some(boot) = parse_mac(mac).ok().and_then(|m| nb.boots.get(&m)) else {
        return not_found();
    };
    let Some((_, _, _, answer_file)) = installer_of(&boot.answer) else {
        return not_found();
    };
    if secret != Some(boot.secret.as_str()) {
        return (StatusCode::FORBIDDEN, "wrong or missing secret\n").into_response();
    }
    match file {
        "user-data" => text(answer_file.to_owned()),
        "meta-data" => text(format!("instance-id: dcim-task-{}\n", boot.task_id)),
        "vendor-data" => text(String::new()),
        _ => not_found(),
    }
}

async fn record_file(State(nb): State<Netboot>, req: Request, next: Next) -> Response {
    nb.events.push(EventKind::File { path: req.uri().path().to_owned() });
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use axum::body::Body;
    use dcim_drivers::{BootDriver, BootMode, BootRequest};
    use tower::ServiceExt;

    use crate::{DhcpMode, NetbootConfig};

    use super::*;

    fn netboot(dir: &std::path::Path) -> Netboot {
        let mut c =
            NetbootConfig::new("nb0", Ipv4Addr::new(10, 78, 0, 1), DhcpMode::Proxy, "http://10.78.0.1:8080", dir);
        c.kernel_args = "console=ttyS0".into();
        Netboot::new(c).unwrap()
    }

    async fn get(nb: &Netboot, uri: &str, auth: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::get(uri);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let r = nb.router().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn script_exists_only_while_the_boot_is_prepared() {
        let dir = std::env::temp_dir().join(format!("dcim-netboot-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vmlinuz"), b"kernel").unwrap();
        let nb = netboot(&dir);
        let (s, _) = get(&nb, "/boot/52-54-00-78-00-01.ipxe", None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        let req = BootRequest {
            task_id: 42,
            secret: "tok3n".into(),
            callback: "http://10.78.0.1:8080/agent".into(),
            mac: "52:54:00:78:00:01".into(),
            mode: BootMode::Install { template: "debian".into() },
            answer: serde_json::json!({"hostname": "n1"}),
            location_id: None,
        };
        nb.prepare(&req).await.unwrap();
        let (s, body) = get(&nb, "/boot/52-54-00-78-00-01.ipxe", None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.starts_with("#!ipxe\n"), "{body}");
        assert!(body.contains(
            "kernel http://10.78.0.1:8080/files/vmlinuz initrd=initrd.gz console=ttyS0 \
             dcim.callback=http://10.78.0.1:8080/agent dcim.task=42 dcim.secret=tok3n dcim.mode=install \
             dcim.answer=http://10.78.0.1:8080/boot/52-54-00-78-00-01/answer"
        ));
        assert!(body.contains("initrd --name initrd.gz http://10.78.0.1:8080/files/initrd.gz"));
        // colon form works as well
        assert_eq!(get(&nb, "/boot/52:54:00:78:00:01.ipxe", None).await.0, StatusCode::OK);

        let answer = "/boot/52-54-00-78-00-01/answer";
        assert_eq!(get(&nb, answer, None).await.0, StatusCode::FORBIDDEN);
        assert_eq!(get(&nb, answer, Some("Bearer nope")).await.0, StatusCode::FORBIDDEN);
        let (s, body) = get(&nb, answer, Some("Bearer tok3n")).await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["answer"]["hostname"], "n1");
        assert_eq!(v["boot"]["template"], "debian");
        assert_eq!(get(&nb, &format!("{answer}?secret=tok3n"), None).await.0, StatusCode::OK);

        let (s, body) = get(&nb, "/files/vmlinuz", None).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "kernel"));
        assert_eq!(get(&nb, "/files/../Cargo.toml", None).await.0, StatusCode::NOT_FOUND);

        nb.cleanup(42, "52:54:00:78:00:01").await.unwrap();
        assert_eq!(get(&nb, "/boot/52-54-00-78-00-01.ipxe", None).await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(&nb, &format!("{answer}?secret=tok3n"), None).await.0, StatusCode::NOT_FOUND);
        let seen: Vec<_> = nb.events().snapshot().into_iter().map(|e| e.kind).collect();
        assert!(seen.contains(&EventKind::File { path: "/vmlinuz".into() }));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn installer_boot(task_id: i64, mac: &str, kind: &str) -> BootRequest {
        BootRequest {
            task_id,
            secret: "s3cr3t".into(),
            callback: "http://10.78.0.1:8080/agent/v1/task".into(),
            mac: mac.into(),
            mode: BootMode::Install { template: "alma".into() },
            answer: serde_json::json!({"hostname": "n1", "installer": {
                "kind": kind,
                "kernel": "http://mirror.example/os/images/pxeboot/vmlinuz",
                "initrd": "http://mirror.example/os/images/pxeboot/initrd.img",
                "answer_file": format!("# {kind} for n1\n"),
            }}),
            location_id: None,
        }
    }

    #[tokio::test]
    async fn an_installer_boot_boots_the_installer_and_serves_its_answer_file() {
        let nb = netboot(&std::env::temp_dir());
        nb.prepare(&installer_boot(7, "52:54:00:78:00:07", "kickstart")).await.unwrap();
        let (s, body) = get(&nb, "/boot/52-54-00-78-00-07.ipxe", None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            body.contains(
                "kernel http://mirror.example/os/images/pxeboot/vmlinuz initrd=initrd.img console=ttyS0 \
                 inst.ks=http://10.78.0.1:8080/boot/52-54-00-78-00-07/installer?secret=s3cr3t"
            ),
            "{body}"
        );
        assert!(body.contains("initrd --name initrd.img http://mirror.example/os/images/pxeboot/initrd.img"), "{body}");
        assert!(!body.contains("dcim.callback"), "{body}");

        let url = "/boot/52-54-00-78-00-07/installer";
        assert_eq!(get(&nb, url, None).await.0, StatusCode::FORBIDDEN);
        assert_eq!(get(&nb, &format!("{url}?secret=nope"), None).await.0, StatusCode::FORBIDDEN);
        let (s, body) = get(&nb, &format!("{url}?secret=s3cr3t"), None).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "# kickstart for n1\n"));
        assert_eq!(get(&nb, "/boot/52-54-00-78-00-08/installer?secret=s3cr3t", None).await.0, StatusCode::NOT_FOUND);

        nb.prepare(&installer_boot(8, "52:54:00:78:00:08", "preseed")).await.unwrap();
        let (_, body) = get(&nb, "/boot/52-54-00-78-00-08.ipxe", None).await;
        assert!(
            body.contains(
                "auto=true priority=critical url=http://10.78.0.1:8080/boot/52-54-00-78-00-08/installer?secret=s3cr3t"
            ),
            "{body}"
        );

        nb.prepare(&installer_boot(9, "52:54:00:78:00:09", "autoinstall")).await.unwrap();
        let (_, body) = get(&nb, "/boot/52-54-00-78-00-09.ipxe", None).await;
        let seed = "/boot/52-54-00-78-00-09/installer/s3cr3t/";
        assert!(body.contains(&format!("autoinstall ds=nocloud-net;s=http://10.78.0.1:8080{seed} ")), "{body}");
        let (s, body) = get(&nb, &format!("{seed}user-data"), None).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "# autoinstall for n1\n"));
        let (s, body) = get(&nb, &format!("{seed}meta-data"), None).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "instance-id: dcim-task-9\n"));
        let wrong = "/boot/52-54-00-78-00-09/installer/nope/user-data";
        assert_eq!(get(&nb, wrong, None).await.0, StatusCode::FORBIDDEN);

        // gone after cleanup
        nb.cleanup(7, "52:54:00:78:00:07").await.unwrap();
        nb.cleanup(9, "52:54:00:78:00:09").await.unwrap();
        assert_eq!(get(&nb, &format!("{url}?secret=s3cr3t"), None).await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(&nb, &format!("{seed}user-data"), None).await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(&nb, "/boot/52-54-00-78-00-07.ipxe", None).await.0, StatusCode::NOT_FOUND);
        // an agent boot has no installer file
        nb.cleanup(8, "52:54:00:78:00:08").await.unwrap();
    }
}
