//! Remote sites: `/dci/v3/site` (admins), and the link a `dcim site` process keeps
//! with its central (`/dci/v3/site/enroll`, `/dci/v3/site/link/...`).

use dcim_store::sites::SiteRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::task::time;

/// The header that names the site protocol a link speaks (`1.0`).
pub const PROTOCOL_HEADER: &str = "x-dcim-site-protocol";
/// The header that names the site's dcim version.
pub const VERSION_HEADER: &str = "x-dcim-site-version";

/// A site as an admin sees it (never its secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct Site {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// The locations whose devices it drives.
    pub locations: Vec<i64>,
    /// It has polled within the central's `site_stale_secs`.
    pub connected: bool,
    /// Since when its link has been up (RFC 3339), while it is.
    pub connected_since: Option<String>,
    /// Its last poll (RFC 3339).
    pub last_seen: Option<String>,
    /// Its dcim version and site protocol, as it last said.
    pub version: String,
    pub protocol: String,
    /// The address it last polled from.
    pub address: String,
    /// What went wrong last: a refusal of its link, or what it reported.
    pub last_error: String,
    /// Calls waiting for it or taken by it and not yet answered.
    pub calls_in_flight: i64,
    /// It holds a credential (enrolled, not revoked).
    pub enrolled: bool,
    /// An enrollment secret waits to be exchanged, until this time (RFC 3339).
    pub enrollment_expires: Option<String>,
    pub created: String,
    pub enrolled_at: Option<String>,
}

impl Site {
    /// `connected`: it polled lately; a site whose credential is revoked is not.
    pub fn new(r: SiteRow, locations: Vec<i64>, connected: bool) -> Site {
        let connected = connected && r.has_credential != 0;
        Site {
            id: r.id,
            name: r.name,
            description: r.description,
            locations,
            connected,
            connected_since: r.connected_since.filter(|_| connected).map(time),
            last_seen: r.last_seen.map(time),
            version: r.version,
            protocol: r.protocol,
            address: r.address,
            last_error: r.last_error,
            calls_in_flight: r.calls_in_flight,
            enrolled: r.has_credential != 0,
            enrollment_expires: r.enrollment_expires.filter(|_| r.enrollment_pending != 0).map(time),
            created: time(r.created_at),
            enrolled_at: r.enrolled_at.map(time),
        }
    }
}

/// `POST /dci/v3/site` and `POST /dci/v3/site/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SiteInput {
    pub name: Option<String>,
    pub description: Option<String>,
    /// The ids of the locations it serves; a location is served by one site at most.
    pub locations: Option<Vec<i64>>,
}

/// A new enrollment secret: give it to the site's `dcim site enroll`. It is shown
/// this once, works once, and expires.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteEnrollment {
    pub id: i64,
    pub enrollment_secret: String,
    /// RFC 3339.
    pub enrollment_expires: String,
}

/// `POST /dci/v3/site/enroll`: the one-time secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrollInput {
    pub secret: String,
}

/// The long-lived credential a site polls with (`Authorization: Bearer`). Shown once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SiteCredential {
    pub id: i64,
    pub name: String,
    pub credential: String,
}

/// `POST /dci/v3/site/link/poll`: the site asks for calls.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct LinkPoll {
    /// How long the central may hold the poll when no call waits (ms); at most half
    /// the central's `site_stale_secs`, and 20 s.
    pub wait_ms: Option<u64>,
    /// Most calls to take (1 to 256; 64 when absent).
    pub max: Option<i64>,
    /// A problem the site reports (shown as the site's `last_error`).
    pub error: Option<String>,
    /// A name the site's process picks when it starts (up to 64 characters): a new
    /// one tells the central the site restarted, so the network boots it held for
    /// waiting tasks are gone and are prepared again.
    pub instance: Option<String>,
}

/// A call handed to a site.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkCall {
    pub id: i64,
    /// The driver call: `op` and its arguments, with the device's access data.
    #[schema(value_type = Object)]
    pub call: serde_json::Value,
}

/// What a poll answers: the calls to perform, possibly none.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkCalls {
    pub calls: Vec<LinkCall>,
}

/// One call's result: `{"Ok": answer}` or `{"Err": driver error}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkAnswer {
    pub id: i64,
    #[schema(value_type = Object)]
    pub outcome: serde_json::Value,
}

/// `POST /dci/v3/site/link/answer`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkAnswers {
    pub answers: Vec<LinkAnswer>,
}

/// How many answers were taken (an answer to a call nobody waits for any more is not).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkAccepted {
    pub accepted: usize,
}
