//! The server list's filter controls as the API's `where` language: the URL of a
//! filtered view and `GET /dci/v3/server?where=...` express the same query, and the
//! page shows that `where` so an operator can take it to a script.
//!
//! Values are quoted (`'` doubled inside), and the store checks every field against
//! its whitelist, so nothing typed here reaches SQL as text.

use serde::Deserialize;

/// What `/ui/servers?...` takes: each control, the advanced `where`, the sort and page.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct ServerFilter {
    pub state: String,
    pub power: String,
    pub configuration: String,
    pub location: String,
    pub rack: String,
    /// An owner's e-mail (exact).
    pub owner: String,
    /// `free` (no owner) or `rented`.
    pub rent: String,
    /// `yes` or `no`.
    pub new: String,
    /// `yes`: servers whose diagnostics found something.
    pub errors: String,
    /// A raw `where`, ANDed with the controls.
    #[serde(rename = "where")]
    pub raw: String,
    /// A field of the list and `asc` or `desc`, e.g. `name desc`.
    pub sort: String,
    /// 1-based page number.
    pub page: Option<u32>,
    /// Rows per page: one of [`PER_PAGE`], else [`PAGE`].
    pub per: Option<u32>,
}

/// Rows per page by default.
pub const PAGE: u32 = 50;

/// The page sizes offered.
pub const PER_PAGE: &[u32] = &[10, 25, 50, 100, 200];

/// `'value'` with quotes doubled.
pub fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// The sort fields the list offers, as the API names them.
pub const SORTS: &[&str] = &["id", "name", "state", "power_status", "configuration", "owner_email", "location.name"];

impl ServerFilter {
    /// The `where` these controls mean (empty: every server).
    pub fn to_where(&self) -> String {
        let mut parts: Vec<String> = vec![];
        let mut eq = |field: &str, v: &str| {
            let v = v.trim();
            if !v.is_empty() {
                parts.push(format!("{field} EQ {}", quote(v)));
            }
        };
        eq("state", &self.state);
        eq("power_status", &self.power);
        eq("configuration", &self.configuration);
        eq("location.name", &self.location);
        eq("rack.name", &self.rack);
        eq("owner_email", &self.owner);
        match self.rent.as_str() {
            "free" => parts.push("owner_email IS null".into()),
            "rented" => parts.push("owner_email IS NOT null".into()),
            _ => {}
        }
        match self.new.as_str() {
            "yes" => parts.push("is_new EQ true".into()),
            "no" => parts.push("is_new EQ false".into()),
            _ => {}
        }
        if self.errors == "yes" {
            parts.push("diag_error IS NOT null".into());
        }
        let raw = self.raw.trim();
        if !raw.is_empty() {
            parts.push(if parts.is_empty() { raw.to_owned() } else { format!("({raw})") });
        }
        parts.join(" AND ")
    }

    /// The `orderby`: a known field and direction, else by id.
    pub fn orderby(&self) -> String {
        let mut it = self.sort.split_whitespace();
        let field = it.next().filter(|f| SORTS.contains(f)).unwrap_or("id");
        let dir = if it.next() == Some("desc") { "desc" } else { "asc" };
        format!("{field} {dir}")
    }

    pub fn page(&self) -> u32 {
        self.page.unwrap_or(1).max(1)
    }

    pub fn per(&self) -> u32 {
        self.per.filter(|p| PER_PAGE.contains(p)).unwrap_or(PAGE)
    }

    /// The first row of this page, from 0.
    pub fn offset(&self) -> u32 {
        (self.page() - 1).saturating_mul(self.per())
    }

    /// The `limit` of this page.
    pub fn limit(&self) -> String {
        format!("{},{}", self.offset(), self.per())
    }

    /// The query string of this view with another page or sort (what links carry).
    pub fn query(&self, page: u32, sort: &str) -> String {
        let mut q: Vec<(&str, String)> = vec![];
        for (k, v) in [
            ("state", &self.state),
            ("power", &self.power),
            ("configuration", &self.configuration),
            ("location", &self.location),
            ("rack", &self.rack),
            ("owner", &self.owner),
            ("rent", &self.rent),
            ("new", &self.new),
            ("errors", &self.errors),
            ("where", &self.raw),
        ] {
            if !v.trim().is_empty() {
                q.push((k, v.clone()));
            }
        }
        if !sort.is_empty() {
            q.push(("sort", sort.to_owned()));
        }
        if self.per() != PAGE {
            q.push(("per", self.per().to_string()));
        }
        if page > 1 {
            q.push(("page", page.to_string()));
        }
        q.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_compile_to_where() {
        let f = ServerFilter {
            state: "ok".into(),
            power: "on".into(),
            owner: "o'brien@example.com".into(),
            rent: "rented".into(),
            new: "no".into(),
            raw: "name CP 'srv-%' OR id EQ 3".into(),
            ..Default::default()
        };
        assert_eq!(
            f.to_where(),
            "state EQ 'ok' AND power_status EQ 'on' AND owner_email EQ 'o''brien@example.com' AND \
             owner_email IS NOT null AND is_new EQ false AND (name CP 'srv-%' OR id EQ 3)"
        );
        assert_eq!(ServerFilter::default().to_where(), "");
        let raw = ServerFilter { raw: "id EQ 1".into(), ..Default::default() };
        assert_eq!(raw.to_where(), "id EQ 1");
        let parsed = dcim_core::query::ListQuery::parse(Some(&f.to_where()), Some(&f.orderby()), Some(&f.limit()));
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn sort_page_and_links() {
        let f = ServerFilter { sort: "name desc".into(), page: Some(3), rent: "free".into(), ..Default::default() };
        assert_eq!((f.orderby(), f.limit()), ("name desc".into(), "100,50".into()));
        let bad = ServerFilter { sort: "password desc; drop".into(), page: Some(0), ..Default::default() };
        assert_eq!((bad.orderby(), bad.page()), ("id asc".into(), 1));
        assert_eq!(f.query(2, "name asc"), "rent=free&sort=name%20asc&page=2");
        let small = ServerFilter { per: Some(10), page: Some(2), ..Default::default() };
        assert_eq!((small.limit(), small.query(3, "")), ("10,10".into(), "per=10&page=3".into()));
        assert_eq!(ServerFilter { per: Some(7), ..Default::default() }.per(), PAGE);
    }
}
