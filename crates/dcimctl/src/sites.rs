//! Remote sites (`/dci/v3/site`): the list with each site's link, one site, a new site
//! or a new enrollment secret (shown once, with the command that starts the site),
//! the locations a site serves, its credential revoked, a site deleted. A site is
//! named by its id or its name, a location likewise.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::output::{Column, Format, WIDE};
use crate::query::{id_of, list_of};
use crate::resources::ListArgs;
use crate::{Ctx, Failure};

#[derive(Subcommand)]
pub enum SiteCmd {
    /// The sites, with their links: connected, since when, their calls in flight.
    ///
    /// Example: dcimctl site list --where "name EQ 'dc-2'" -o wide
    List {
        #[command(flatten)]
        args: ListArgs,
    },
    /// One site, by id or name.
    ///
    /// Example: dcimctl site show dc-2
    Show { site: String },
    /// A new site serving the locations given (by id or name). Its one-time enrollment
    /// secret is shown once, with the command that starts the site.
    ///
    /// Example: dcimctl site create dc-2 --location "DC 2" --description "Frankfurt"
    Create {
        name: String,
        /// A location the site serves (by id or name); again for more.
        #[arg(long = "location")]
        locations: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Change a site: only what is given. `--location` replaces the locations it
    /// serves; `--no-locations` gives them all back to the direct path.
    ///
    /// Example: dcimctl site edit dc-2 --location "DC 2" --location "DC 2 annex"
    Edit {
        site: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "location", conflicts_with = "no_locations")]
        locations: Vec<String>,
        #[arg(long)]
        no_locations: bool,
    },
    /// Revoke the site's credential: its next poll is refused and it stops.
    ///
    /// Example: dcimctl site revoke dc-2
    Revoke { site: String },
    /// A new enrollment secret (a reinstalled site, a lost credential); the credential
    /// the site held is revoked.
    ///
    /// Example: dcimctl site enrollment dc-2
    Enrollment { site: String },
    /// Delete a site: its locations are reached directly again.
    ///
    /// Example: dcimctl site delete dc-2
    Delete { site: String },
}

const COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("LOCATIONS", "locations"),
    ("CONNECTED", "connected"),
    ("LAST SEEN", "last_seen"),
    ("CALLS", "calls_in_flight"),
    ("VERSION", "version"),
    WIDE,
    ("SINCE", "connected_since"),
    ("ADDRESS", "address"),
    ("ENROLLED", "enrolled"),
    ("LAST ERROR", "last_error"),
    ("DESCRIPTION", "description"),
];

const PATH: &str = "/dci/v3/site";

async fn site_id(ctx: &Ctx, site: &str) -> Result<i64, Failure> {
    id_of(ctx, PATH, "name", site, "site").await
}

async fn location_ids(ctx: &Ctx, given: &[String]) -> Result<Vec<i64>, Failure> {
    let mut ids = Vec::with_capacity(given.len());
    for l in given {
        ids.push(id_of(ctx, "/dci/v3/location", "name", l, "location").await?);
    }
    Ok(ids)
}

/// An enrollment secret as the API answered it: as JSON or YAML unchanged, else with
/// the command that starts the site (the secret in the environment, where other users
/// of the site's machine cannot read it, unlike a command's arguments).
fn enrollment(ctx: &Ctx, name: &str, v: &Value) -> Result<(), Failure> {
    if !matches!(ctx.view_format, Format::Table | Format::Wide) {
        ctx.view().object(v, &[("ID", "id"), ("SECRET", "enrollment_secret"), ("EXPIRES", "enrollment_expires")]);
        return Ok(());
    }
    let secret = v["enrollment_secret"]
        .as_str()
        .ok_or_else(|| Failure::Connection(format!("no enrollment secret in the answer: {v}")))?;
    let fingerprint = ctx.api.seen_fingerprint().unwrap_or_else(|| "<the SHA-256 of the central's certificate>".into());
    out!("Site {name} (id {}): its enrollment secret works once, until {}.", v["id"], text(&v["enrollment_expires"]));
    out!("It is not shown again. On the site's machine, run:");
    out!("");
    out!("  DCIM_SITE_ENROLLMENT={secret} dcim site --central {} --central-fingerprint {fingerprint}", ctx.api.base);
    Ok(())
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

pub async fn run(ctx: &Ctx, cmd: &SiteCmd) -> Result<(), Failure> {
    match cmd {
        SiteCmd::List { args } => {
            let v = list_of(ctx, PATH, args.filter.clone(), args.sort.as_deref(), args.limit, args.all).await?;
            ctx.view().list(&v, COLUMNS);
        }
        SiteCmd::Show { site } => {
            let id = site_id(ctx, site).await?;
            ctx.view().object(&ctx.api.get(&format!("{PATH}/{id}")).await?, COLUMNS);
        }
        SiteCmd::Create { name, locations, description } => {
            let mut body = json!({"name": name, "locations": location_ids(ctx, locations).await?});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let v = ctx.api.post(PATH, &body).await?;
            enrollment(ctx, name, &v)?;
        }
        SiteCmd::Edit { site, name, description, locations, no_locations } => {
            let id = site_id(ctx, site).await?;
            let mut body = serde_json::Map::new();
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            if *no_locations || !locations.is_empty() {
                body.insert("locations".into(), json!(location_ids(ctx, locations).await?));
            }
            if body.is_empty() {
                return Err(Failure::Usage(
                    "nothing to change: give --name, --description, --location or --no-locations".into(),
                ));
            }
            ctx.api.post(&format!("{PATH}/{id}"), &Value::Object(body)).await?;
            ctx.view().object(&ctx.api.get(&format!("{PATH}/{id}")).await?, COLUMNS);
        }
        SiteCmd::Revoke { site } => {
            let id = site_id(ctx, site).await?;
            ctx.api.post(&format!("{PATH}/{id}/revoke"), &json!({})).await?;
            ctx.view().object(&ctx.api.get(&format!("{PATH}/{id}")).await?, COLUMNS);
        }
        SiteCmd::Enrollment { site } => {
            let id = site_id(ctx, site).await?;
            let name = ctx.api.get(&format!("{PATH}/{id}")).await?["name"].as_str().unwrap_or(site).to_owned();
            let v = ctx.api.post(&format!("{PATH}/{id}/enrollment"), &json!({})).await?;
            enrollment(ctx, &name, &v)?;
        }
        SiteCmd::Delete { site } => {
            let id = site_id(ctx, site).await?;
            let v: Value = ctx.api.call(reqwest::Method::DELETE, &format!("{PATH}/{id}"), None).await?;
            if matches!(ctx.view_format, Format::Json | Format::Yaml) {
                out!("{}", ctx.view_format.raw(&v));
            }
        }
    }
    Ok(())
}
