//! The server's life cycle: open and migrate the database, ensure the configured
//! admin (and the demo data), bind, serve HTTP or HTTPS until a signal, then stop
//! accepting, let requests in flight finish, and close the database.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::RustlsAcceptor;
use std::sync::Arc;

use dcim_api::AppState;
use dcim_drivers::Drivers;
use dcim_store::Store;
use dcim_tasks::Engine;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Config;
use crate::framing::FramingAcceptor;
use crate::limits::ConnectionLimit;

/// A server started by [`start`].
pub struct Running {
    pub addr: SocketAddr,
    pub tls: bool,
    pub store: Store,
    pub engine: Arc<Engine>,
    handle: axum_server::Handle<SocketAddr>,
    task: JoinHandle<anyhow::Result<()>>,
    engine_stop: watch::Sender<bool>,
    engine_task: JoinHandle<()>,
    /// Each netboot segment's servers and its HTTP listener, when configured.
    netboot: Vec<(dcim_netboot::NetbootServers, JoinHandle<()>)>,
    /// The address of the `metrics_listen` listener, when configured.
    pub metrics_addr: Option<SocketAddr>,
    metrics: Option<JoinHandle<()>>,
    /// Serving HTTPS: the live TLS configuration and the files it was read from.
    tls_files: Option<(axum_server::tls_rustls::RustlsConfig, std::path::PathBuf, std::path::PathBuf)>,
}

impl Running {
    /// Base URL of the API, e.g. `https://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// Reads the certificate and key files again: new connections get them, the ones
    /// open keep theirs. On an error (a file missing or not matching) the certificate
    /// in use stays.
    pub async fn reload_tls(&self) -> anyhow::Result<()> {
        let Some((config, cert, key)) = &self.tls_files else { return Ok(()) };
        config
            .reload_from_pem_file(cert, key)
            .await
            .with_context(|| format!("reloading TLS certificate {} and key {}", cert.display(), key.display()))
    }

    /// Graceful stop: no new connections or task claims; requests in flight and
    /// running steps get `grace` to finish, and unfinished tasks are handed back.
    pub async fn stop(self, grace: Duration) -> anyhow::Result<()> {
        let _ = self.engine_stop.send(true);
        let _ = tokio::time::timeout(grace, self.engine_task).await;
        self.handle.graceful_shutdown(Some(grace));
        for (servers, http) in self.netboot {
            http.abort();
            drop(servers);
        }
        if let Some(m) = self.metrics {
            m.abort();
        }
        let r = self.task.await.context("server task")?;
        self.store.close().await;
        r
    }
}

/// Opens the store named by the configuration and brings its schema up to date.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let url = cfg.database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    }
    let store =
        Store::connect(&url).await.with_context(|| format!("opening database {}", dcim_store::redact_url(&url)))?;
    store.migrate().await.context("migrating the database")?;
    crate::secrets::adopt(store, cfg).await
}

/// The netboot segments of a configuration, started.
pub struct Booting {
    /// Each segment's service, its DHCP, TFTP and RA servers, and where its HTTP
    /// listener is to be bound (the caller binds it, with the agent route it serves).
    pub segments: Vec<(dcim_netboot::Netboot, dcim_netboot::NetbootServers, String)>,
    /// The segments as one boot driver, when there are any.
    pub driver: Option<Arc<dyn dcim_drivers::BootDriver>>,
    /// Where agents report when no segment says: the catch-all segment's listener, else
    /// the first's.
    pub callback_base: Option<String>,
}

/// Starts the netboot segments of `cfg`: `netboot` (every location the others do not
/// name), then `netboot_segments`.
pub async fn start_netboot(cfg: &Config) -> anyhow::Result<Booting> {
    let mut segments = vec![];
    if let Some(nb_cfg) = &cfg.netboot {
        let listen = cfg.netboot_listen.clone().context("netboot needs netboot_listen (host:port of http_base)")?;
        segments.push((nb_cfg.clone(), listen, vec![]));
    }
    for s in &cfg.netboot_segments {
        segments.push((s.netboot.clone(), s.listen.clone(), s.locations.clone()));
    }
    let fallback = segments.iter().find(|(_, _, l)| l.is_empty()).or(segments.first());
    let callback_base = fallback.map(|(c, _, _)| c.http_base.trim_end_matches('/').to_owned());
    let mut started = vec![];
    let mut driver: Option<Arc<dyn dcim_drivers::BootDriver>> = None;
    if !segments.is_empty() {
        let mut set = vec![];
        for (nb_cfg, listen, locations) in segments {
            let nb = dcim_netboot::Netboot::new(nb_cfg.clone())
                .with_context(|| format!("netboot configuration of {}", nb_cfg.interface))?;
            let servers =
                nb.start().await.with_context(|| format!("starting the netboot service on {}", nb_cfg.interface))?;
            set.push(dcim_netboot::Segment { locations, service: nb.clone() });
            started.push((nb, servers, listen));
        }
        let set = dcim_netboot::Segments::new(set).map_err(|e| anyhow::anyhow!("netboot segments: {e}"))?;
        driver = Some(Arc::new(set));
    }
    Ok(Booting { segments: started, driver, callback_base })
}

/// Starts serving in the background; returns once the socket is bound.
pub async fn start(cfg: &Config) -> anyhow::Result<Running> {
    let store = open_store(cfg).await?;
    crate::demo::ensure_admin(&store, cfg).await?;
    if cfg.demo {
        crate::demo::seed(&store, cfg).await?;
    }
    let listener = std::net::TcpListener::bind(&cfg.listen).with_context(|| format!("binding {}", cfg.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let tls = cfg.tls_enabled();
    let scheme = if tls { "https" } else { "http" };
    // Agents on this machine (the fake lab's) call back on loopback.
    let own = if addr.ip().is_unspecified() { SocketAddr::new([127, 0, 0, 1].into(), addr.port()) } else { addr };
    // The fake lab only where it is asked for (the demo, tests, benchmarks).
    let lab = cfg.fake_lab()?;
    if let Some(lab) = lab.as_ref().filter(|_| cfg.demo) {
        // The demo's fake machines report the hardware the demo gave them, so their
        // diagnostics find what is recorded (and nothing missing).
        for (mac, hw) in store.hardware_by_mac().await? {
            if let Ok(v) = serde_json::from_str(&hw) {
                lab.set_hardware(&mac, v);
            }
        }
        // Its fake switch answers with the port descriptions the demo recorded.
        for (address, index, alias) in store.fake_port_aliases().await? {
            lab.set_port_alias(&address, index, &alias);
        }
    }
    let mut drivers = Drivers::with_settings(lab, &cfg.drivers());
    // Agents report to this server; booted over the netboot service, through its listener.
    let booting = start_netboot(cfg).await?;
    let callback_base = booting.callback_base.clone().unwrap_or_else(|| format!("{scheme}://{own}"));
    if let Some(set) = booting.driver {
        drivers = drivers.with_netboot(set);
    }
    let netboot = booting.segments;
    let engine = Engine::new(store.clone(), drivers, cfg.engine(&callback_base));
    let (engine_stop, stop_rx) = watch::channel(false);
    let engine_task = tokio::spawn(engine.clone().run(stop_rx.clone()));
    let workers = &engine.workers;
    let concurrency = cfg.power_poll_concurrency;
    if cfg.power_poll_secs > 0 {
        let (every, e) = (Duration::from_secs(cfg.power_poll_secs), engine.clone());
        workers.spawn("power_poller", every, concurrency, stop_rx.clone(), move || {
            let e = e.clone();
            async move { dcim_tasks::poller::poll_once(&e, concurrency).await }
        });
    }
    if cfg.port_poll_secs > 0 {
        let (every, e) = (Duration::from_secs(cfg.port_poll_secs), engine.clone());
        workers.spawn("port_poller", every, concurrency, stop_rx.clone(), move || {
            let e = e.clone();
            async move { dcim_tasks::port_poller::poll_once(&e, concurrency).await }
        });
    }

    // Webhooks may not post to dcim's own listeners.
    let mut own_addrs = vec![addr];
    own_addrs.extend(netboot.iter().filter_map(|(_, _, listen)| listen.parse::<SocketAddr>().ok()));
    let guard = dcim_api::webhook_guard::UrlGuard { own: own_addrs, allow_unsafe: cfg.webhook_allow_unsafe_targets };
    let deliveries = cfg.webhooks();
    let delivery_worker = workers.register("webhook_delivery", deliveries.poll, deliveries.concurrency as usize);
    tokio::spawn(crate::webhooks::run(store.clone(), guard.clone(), deliveries, delivery_worker, stop_rx.clone()));
    let (idle, retention) = (cfg.session_idle_secs, cfg.audit_retention_days);
    let purged = store.clone();
    workers.spawn("session_purge", Duration::from_secs(300), 1, stop_rx.clone(), move || {
        let store = purged.clone();
        async move {
            match store.purge_expired(idle).await {
                Ok(n) => Ok(format!("{n} expired sessions and keys removed")),
                Err(e) => Err(format!("purging expired sessions failed: {e}")),
            }
        }
    });
    if retention > 0 {
        let kept = store.clone();
        workers.spawn("audit_retention", Duration::from_secs(3600), 1, stop_rx, move || {
            let store = kept.clone();
            async move { dcim_api::routes::audit::retention_round(&store, retention).await }
        });
    }
    let tls_pair = match (tls, &cfg.tls_cert, &cfg.tls_key) {
        (false, _, _) => None,
        (true, Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (true, Some(_), None) | (true, None, Some(_)) => anyhow::bail!("--tls-cert and --tls-key go together"),
        (true, None, None) => Some(crate::tls::demo_certificate(&cfg.data_dir)?),
    };
    let mut api = cfg.api();
    api.webhook_guard = guard;
    api.tls_cert = tls_pair.as_ref().map(|(c, _)| c.clone());
    let state = AppState::new(store.clone(), engine.clone(), api);
    let mut listeners = vec![];
    for (nb, servers, listen) in netboot {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding the netboot listener {listen}"))?;
        let app = nb.router().merge(dcim_api::agent_app(state.clone()));
        let http = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, %listen, "a netboot HTTP listener stopped");
            }
        });
        listeners.push((servers, http));
    }
    let netboot = listeners;
    // Prometheus' own listener (plain HTTP): /metrics, /ready and /health alone.
    let (metrics_addr, metrics) = match &cfg.metrics_listen {
        Some(listen) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding the metrics listener {listen}"))?;
            let bound = listener.local_addr()?;
            let app = dcim_api::metrics_app(state.clone());
            let task = tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, %bound, "the metrics listener stopped");
                }
            });
            (Some(bound), Some(task))
        }
        None => (None, None),
    };
    let app = axum::ServiceExt::into_make_service_with_connect_info::<SocketAddr>(dcim_api::app_with(
        state.clone(),
        dcim_ui::router(state),
    ));
    let handle = axum_server::Handle::new();
    let mut tls_files = None;
    let task = if let Some((cert, key)) = tls_pair {
        let rustls = crate::tls::rustls_config(&cert, &key).await?;
        tls_files = Some((rustls.clone(), cert.clone(), key.clone()));
        // TCP_NODELAY: an answer's last segment goes out at once instead of waiting for
        // the client's delayed ACK of the one before (a 40 ms stall on Linux).
        let acceptor = RustlsAcceptor::new(rustls).acceptor(NoDelayAcceptor::new());
        let server = guarded(axum_server::from_tcp(listener)?.acceptor(acceptor), cfg, &handle);
        tokio::spawn(async move { server.serve(app).await.context("serving HTTPS") })
    } else {
        let server = guarded(axum_server::from_tcp(listener)?.acceptor(NoDelayAcceptor::new()), cfg, &handle);
        tokio::spawn(async move { server.serve(app).await.context("serving HTTP") })
    };
    tracing::info!(%addr, tls, database = %dcim_store::redact_url(&cfg.database_url()), "dcim is serving");
    Ok(Running {
        addr,
        tls,
        store,
        engine,
        handle,
        task,
        engine_stop,
        engine_task,
        netboot,
        metrics_addr,
        metrics,
        tls_files,
    })
}

/// The API's server with what guards it, HTTP or HTTPS alike: the framing check, the
/// bound on connections, and the time a client has to send a request's head (the first
/// one, and each next one on a kept-alive connection; a TLS handshake has rustls' own
/// 10 s).
fn guarded<A>(
    server: axum_server::Server<SocketAddr, A>,
    cfg: &Config,
    handle: &axum_server::Handle<SocketAddr>,
) -> axum_server::Server<SocketAddr, ConnectionLimit<FramingAcceptor<A>>> {
    let header_timeout = Duration::from_secs(cfg.header_read_timeout_secs.max(1));
    let mut server = server
        .map(FramingAcceptor)
        .map(|a| ConnectionLimit::new(a, cfg.max_connections))
        .first_request_timeout(header_timeout)
        .handle(handle.clone());
    server.http_builder().http1().header_read_timeout(header_timeout);
    server
}

/// `dcim serve`: runs until SIGINT or SIGTERM, then shuts down gracefully; SIGHUP
/// reloads the TLS certificate and key (a renewed certificate needs no restart).
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let running = start(&cfg).await?;
    println!("dcim listening on {}", running.url());
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = &mut stop => {
                r?;
                tracing::info!("shutting down: finishing requests in flight");
                return running.stop(Duration::from_secs(10)).await;
            }
            _ = hup.recv() => match running.reload_tls().await {
                Ok(()) if running.tls => tracing::info!("TLS certificate reloaded"),
                Ok(()) => tracing::info!("SIGHUP: nothing to reload (no TLS)"),
                Err(e) => tracing::error!(error = %format!("{e:#}"), "TLS certificate not reloaded; the old one stays"),
            },
        }
    }
}

pub async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}
