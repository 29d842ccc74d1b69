//! `dcim`: one binary, a subcommand per role.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dcim::config::{Config, Overrides};

/// mimalloc rather than glibc's malloc: allocation was a tenth of the CPU of a read in
/// issue 19's profile, and with mimalloc the bench's reads of one server run about a
/// quarter faster and its full list of 10,000 servers in half the time (bench/README.md).
/// It is built without transparent huge pages (the crate's `no_thp`): with them, the
/// kernel backed its arenas with 2 MiB pages, and a fresh process held 34 MiB of its
/// own where it now holds 18 (bench/README.md, issue 19's fifth step). It keeps freed
/// memory about a second for reuse: `MIMALLOC_PURGE_DELAY=0` and
/// `MIMALLOC_ARENA_EAGER_COMMIT=0` in the environment give it back at once, for a
/// smaller footprint at a cost in speed (README.md, "Running for real").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "dcim", version, about = "Bare-metal data-center manager with a DCImanager 6 compatible API")]
struct Cli {
    /// TOML configuration file (also DCIM_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://... (default: SQLite in the data directory).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Data directory (SQLite file, demo certificate and credentials).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API.
    Serve {
        /// Address to listen on, host:port.
        #[arg(long)]
        listen: Option<String>,
        /// Start with the demo data center on the fake drivers (HTTPS with a self-signed certificate).
        #[arg(long)]
        demo: bool,
        #[arg(long)]
        tls_cert: Option<PathBuf>,
        #[arg(long)]
        tls_key: Option<PathBuf>,
        /// Plain HTTP even with --demo.
        #[arg(long)]
        no_tls: bool,
        /// Enable the fake lab's drivers and its /dci/v3/fake routes without the demo data
        /// (tests, benchmarks); --demo enables them too.
        #[arg(long)]
        fake_drivers: bool,
    },
    /// Run as a remote site: drive the devices of the locations the central gives this
    /// site, connecting out to the central over HTTPS.
    Site {
        /// The central's URL, https://host:port; several (comma-separated) for the
        /// processes of a central tier, tried in turn.
        #[arg(long, env = "DCIM_CENTRAL_URL", value_delimiter = ',', required = true)]
        central: Vec<String>,
        /// SHA-256 of the central's certificate (openssl x509 -fingerprint -sha256).
        #[arg(long, env = "DCIM_CENTRAL_FINGERPRINT")]
        central_fingerprint: String,
        /// The one-time enrollment secret the central gave this site; needed once, until
        /// the credential is kept in the state directory.
        #[arg(long, env = "DCIM_SITE_ENROLLMENT", hide_env_values = true)]
        enroll: Option<String>,
        /// Where the site keeps its credential (default: the data directory).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Where agents report that boot from no netboot segment of this site (the fake
        /// lab's), host:port; relayed to the central.
        #[arg(long)]
        agent_listen: Option<String>,
        /// Calls performed at once.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        /// Drive fake devices (tests, benchmarks).
        #[arg(long)]
        fake_drivers: bool,
    },
    /// Create or update the database schema, then exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The key that seals secrets in the database.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Seal every secret under a new key and put it in the key file. Restart the other
    /// dcim processes of the database with the new file afterwards.
    Rotate,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user.
    Add {
        #[arg(long)]
        email: String,
        /// The password (or DCIM_USER_PASSWORD).
        #[arg(long, env = "DCIM_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// @admin or @user.
        #[arg(long, default_value = "@user")]
        role: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut flags = Overrides { database_url: cli.database_url, data_dir: cli.data_dir, ..Overrides::default() };
    if let Command::Serve { listen, demo, tls_cert, tls_key, no_tls, fake_drivers } = &cli.command {
        flags.listen = listen.clone();
        flags.demo = demo.then_some(true);
        flags.tls_cert = tls_cert.clone();
        flags.tls_key = tls_key.clone();
        flags.no_tls = no_tls.then_some(true);
        flags.fake_drivers = fake_drivers.then_some(true);
    }
    if let Command::Site { fake_drivers: true, .. } = &cli.command {
        flags.fake_drivers = Some(true);
    }
    let cfg = Config::load(cli.config, &flags)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log));
    if cfg.log_format == "json" {
        // One JSON object per line, with the fields of the request's or task's span.
        tracing_subscriber::fmt().json().with_current_span(true).with_span_list(false).with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    match cli.command {
        Command::Serve { .. } => dcim::serve::run(cfg).await,
        Command::Site { central, central_fingerprint, enroll, state_dir, agent_listen, concurrency, .. } => {
            let state_dir = state_dir.unwrap_or_else(|| cfg.data_dir.clone());
            let mut opts = dcim::site::SiteOptions::new(&central, &central_fingerprint, &state_dir);
            opts.enrollment = enroll;
            opts.agent_listen = agent_listen;
            opts.concurrency = concurrency.max(1);
            let stop = async {
                let _ = dcim::serve::shutdown_signal().await;
            };
            dcim::site::run(&cfg, opts, stop).await
        }
        Command::Migrate => {
            let store = dcim::serve::open_store(&cfg).await?;
            store.close().await;
            println!("database is up to date");
            Ok(())
        }
        Command::Secrets { command: SecretsCommand::Rotate } => {
            let store = dcim::serve::open_store(&cfg).await?;
            let (n, id) = dcim::secrets::rotate(&store, &cfg).await?;
            store.close().await;
            println!("{n} secrets sealed under the new key {id}; restart the other dcim processes of this database");
            Ok(())
        }
        Command::User { command: UserCommand::Add { email, password, role } } => {
            let role = role.parse().map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            anyhow::ensure!(
                password.chars().count() >= cfg.min_password_len,
                "--password needs at least {} characters",
                cfg.min_password_len
            );
            let store = dcim::serve::open_store(&cfg).await?;
            let id = dcim::demo::create_user(&store, &email, &password, role).await.context("adding the user")?;
            store.close().await;
            println!("user {id} created");
            Ok(())
        }
    }
}
