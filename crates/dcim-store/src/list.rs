//! Turns a parsed DCImanager list query (`where`, `orderby`, `limit`) into SQL.
//!
//! Each list declares the fields a client may name, with the SQL expression behind
//! each and its type. A field outside that whitelist is an error, and every value is
//! bound as a parameter: nothing a client writes is ever pasted into SQL.

use dcim_core::query::{CmpOp, Expr, ListQuery, Value};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::{Query, QueryAs};
use sqlx::{Any, AssertSqlSafe, FromRow};

use crate::audit::Tx;
use crate::{Result, Store, StoreError};

/// A value bound to a `$N` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Int(i64),
    Text(String),
    Null,
}

/// The SQL type of a listed field, which decides how a `where` value is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Int,
    Text,
    /// Stored as 0/1; compared with `true`/`false` (or 1/0).
    Bool,
}

/// One field a client may filter and sort on.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub sql: &'static str,
    pub ty: FieldType,
    /// An expression that is null exactly when `sql` is, tested in `IS [NOT] null`
    /// instead of it: a joined row's NOT NULL column is null exactly when the key that
    /// joins it is, and the key needs no join (so a page's count leaves it out).
    pub null_sql: Option<&'static str>,
}

impl Field {
    pub const fn new(name: &'static str, sql: &'static str, ty: FieldType) -> Self {
        Field { name, sql, ty, null_sql: None }
    }

    /// The field with `IS [NOT] null` tested on `key`, which must be null exactly when
    /// the field is (a foreign key to the row holding the field's NOT NULL column).
    pub const fn null_as(self, key: &'static str) -> Self {
        Field { null_sql: Some(key), ..self }
    }
}

/// How one list endpoint maps onto SQL.
pub struct ListSpec {
    /// `SELECT ... FROM ... [JOIN ...]`, without a `WHERE`.
    pub select: &'static str,
    /// `FROM ... [JOIN ...]` used for the count; the same joins as `select`.
    pub from: &'static str,
    /// A cheaper `FROM` for counting everything, when nothing filters the list.
    pub count_all_from: Option<&'static str>,
    /// Counts kept per combination of a few fields, which answer the count of a page
    /// whose filter names only those fields (and that no scope restricts).
    pub facets: Option<&'static Facets>,
    pub fields: &'static [Field],
    /// Order used after the client's own (and alone when it gives none): keeps pages stable.
    pub tiebreak: &'static str,
}

/// A table that holds, for each combination of a few of a list's fields, how many rows
/// have it (kept by triggers in the transaction of each write). Every row of one
/// combination has the same values of those fields, so a filter that names only them
/// is true or false for all of a combination's rows at once: the sum of the matching
/// combinations is the count, read from a few rows instead of every one.
pub struct Facets {
    /// `FROM` of the counts, such as `server_counts f`.
    pub from: &'static str,
    /// The column of a combination's number of rows.
    pub rows: &'static str,
    /// The list's fields the counts answer, by name.
    pub fields: &'static [(&'static str, Facet)],
}

/// How the counts table answers a list field.
#[derive(Debug, Clone, Copy)]
pub enum Facet {
    /// An expression of the counts with the field's own value: any comparison.
    Value(&'static str),
    /// A 0/1 column that is 1 where the field is set: `IS [NOT] null` alone.
    Presence(&'static str),
}

/// A page of rows and the number of rows that matched before `limit`.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub size: i64,
}

/// SQL text under construction with its bound values.
#[derive(Debug, Default)]
pub struct SqlBuf {
    pub text: String,
    pub binds: Vec<Bind>,
}

impl SqlBuf {
    /// Appends a placeholder bound to `b`.
    pub fn bind(&mut self, b: Bind) {
        self.binds.push(b);
        self.text.push('$');
        self.text.push_str(&self.binds.len().to_string());
    }

    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// Appends ` AND <scope>` for each scope.
    pub fn and_scopes(&mut self, scopes: &[Scope]) {
        for s in scopes {
            let (before, after) = s.sql.split_once('?').expect("a scope holds one '?'");
            self.push(" AND ");
            self.push(before);
            self.bind(s.value.clone());
            self.push(after);
        }
    }
}

/// A restriction the caller cannot lift, such as "only my servers": `sql` holds one `?`
/// that becomes a placeholder for `value`.
#[derive(Debug, Clone)]
pub struct Scope {
    pub sql: &'static str,
    pub value: Bind,
}

fn query_err(param: &'static str, message: String) -> StoreError {
    StoreError::Query { param, message, position: None }
}

fn field<'a>(spec: &'a ListSpec, name: &str, param: &'static str) -> Result<&'a Field> {
    spec.fields.iter().find(|f| f.name == name).ok_or_else(|| {
        let known: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
        query_err(param, format!("unknown field '{name}'; known fields: {}", known.join(", ")))
    })
}

fn bind_value(f: &Field, op: CmpOp, v: &Value) -> Result<Bind> {
    let wrong = |expected: &str| query_err("where", format!("field '{}' expects {expected}, got {v:?}", f.name));
    if op == CmpOp::Cp {
        return match v {
            Value::Str(s) => Ok(Bind::Text(s.to_lowercase())),
            Value::Int(i) => Ok(Bind::Text(i.to_string())),
            _ => Err(wrong("a pattern string with CP")),
        };
    }
    match (f.ty, v) {
        (_, Value::Null) => {
            Err(query_err("where", format!("compare '{}' with null using IS null or IS NOT null", f.name)))
        }
        (FieldType::Int, Value::Int(i)) => Ok(Bind::Int(*i)),
        (FieldType::Int, Value::Str(s)) => s.trim().parse().map(Bind::Int).map_err(|_| wrong("an integer")),
        (FieldType::Int, Value::Bool(_)) => Err(wrong("an integer")),
        (FieldType::Bool, Value::Bool(b)) => Ok(Bind::Int(i64::from(*b))),
        (FieldType::Bool, Value::Int(i @ (0 | 1))) => Ok(Bind::Int(*i)),
        (FieldType::Bool, Value::Str(s)) => match s.as_str() {
            "true" => Ok(Bind::Int(1)),
            "false" => Ok(Bind::Int(0)),
            _ => Err(wrong("true or false")),
        },
        (FieldType::Bool, _) => Err(wrong("true or false")),
        (FieldType::Text, Value::Str(s)) => Ok(Bind::Text(s.clone())),
        (FieldType::Text, Value::Int(i)) => Ok(Bind::Text(i.to_string())),
        (FieldType::Text, Value::Bool(b)) => Ok(Bind::Text(b.to_string())),
    }
}

/// Appends `(sql OP $n)` (`LOWER(sql) LIKE $n` for `CP`) bound to `b`.
fn push_cmp(out: &mut SqlBuf, sql: &str, op: CmpOp, b: Bind) {
    out.push("(");
    if op == CmpOp::Cp {
        out.push("LOWER(");
        out.push(sql);
        out.push(") LIKE ");
    } else {
        out.push(sql);
        out.push(match op {
            CmpOp::Eq => " = ",
            CmpOp::Ne => " <> ",
            CmpOp::Gt => " > ",
            CmpOp::Lt => " < ",
            CmpOp::Ge => " >= ",
            CmpOp::Le => " <= ",
            CmpOp::Cp => unreachable!("handled above"),
        });
    }
    out.bind(b);
    out.push(")");
}

/// The filter `e` over the counts of `facets`; `None` when it names a field they do not
/// answer (or tests a presence with anything but `IS [NOT] null`).
fn compile_facet_expr(e: &Expr, spec: &ListSpec, facets: &Facets, out: &mut SqlBuf) -> Option<()> {
    let facet = |name: &str| facets.fields.iter().find(|(n, _)| *n == name).map(|(_, f)| *f);
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            out.push("(");
            compile_facet_expr(a, spec, facets, out)?;
            out.push(if matches!(e, Expr::And(..)) { " AND " } else { " OR " });
            compile_facet_expr(b, spec, facets, out)?;
            out.push(")");
        }
        Expr::Not(a) => {
            out.push("NOT (");
            compile_facet_expr(a, spec, facets, out)?;
            out.push(")");
        }
        Expr::IsNull { field: name, negated } => match facet(name)? {
            Facet::Value(sql) => {
                out.push("(");
                out.push(sql);
                out.push(if *negated { " IS NOT NULL)" } else { " IS NULL)" });
            }
            Facet::Presence(col) => {
                out.push("(");
                out.push(col);
                out.push(if *negated { " = 1)" } else { " = 0)" });
            }
        },
        Expr::Cmp { field: name, op, value } => {
            let Facet::Value(sql) = facet(name)? else { return None };
            let b = bind_value(field(spec, name, "where").ok()?, *op, value).ok()?;
            push_cmp(out, sql, *op, b);
        }
    }
    Some(())
}

fn compile_expr(e: &Expr, spec: &ListSpec, out: &mut SqlBuf) -> Result<()> {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            out.push("(");
            compile_expr(a, spec, out)?;
            out.push(if matches!(e, Expr::And(..)) { " AND " } else { " OR " });
            compile_expr(b, spec, out)?;
            out.push(")");
        }
        Expr::Not(a) => {
            out.push("NOT (");
            compile_expr(a, spec, out)?;
            out.push(")");
        }
        Expr::IsNull { field: name, negated } => {
            let f = field(spec, name, "where")?;
            out.push("(");
            out.push(f.null_sql.unwrap_or(f.sql));
            out.push(if *negated { " IS NOT NULL)" } else { " IS NULL)" });
        }
        Expr::Cmp { field: name, op, value } => {
            let f = field(spec, name, "where")?;
            let b = bind_value(f, *op, value)?;
            push_cmp(out, f.sql, *op, b);
        }
    }
    Ok(())
}

/// Appends ` WHERE ...` (scopes and the client's filter) to `out`.
pub fn compile_where(q: &ListQuery, spec: &ListSpec, scopes: &[Scope], out: &mut SqlBuf) -> Result<()> {
    let mut first = true;
    for s in scopes {
        out.push(if first { " WHERE " } else { " AND " });
        first = false;
        let (before, after) = s.sql.split_once('?').expect("a scope holds one '?'");
        out.push(before);
        out.bind(s.value.clone());
        out.push(after);
    }
    if let Some(filter) = &q.filter {
        out.push(if first { " WHERE " } else { " AND " });
        compile_expr(filter, spec, out)?;
    }
    Ok(())
}

/// Appends ` ORDER BY ... [LIMIT n OFFSET m]` to `out`.
pub fn compile_order_limit(q: &ListQuery, spec: &ListSpec, out: &mut SqlBuf) -> Result<()> {
    out.push(" ORDER BY ");
    for o in &q.order {
        let f = field(spec, &o.field, "orderby")?;
        out.push(f.sql);
        out.push(if o.desc { " DESC, " } else { " ASC, " });
    }
    out.push(spec.tiebreak);
    if let Some(l) = q.limit {
        let count = i64::try_from(l.count).unwrap_or(i64::MAX);
        let offset = i64::try_from(l.offset).unwrap_or(i64::MAX);
        out.push(&format!(" LIMIT {count} OFFSET {offset}"));
    }
    Ok(())
}

/// An `UPDATE table SET ... WHERE id = $N` built from the fields a patch carries. Run
/// inside an audited request, it records each field it changes, before and after.
pub(crate) struct Patch {
    table: String,
    buf: SqlBuf,
    cols: Vec<(String, Bind)>,
}

impl Patch {
    pub(crate) fn new(table: &str) -> Self {
        Patch {
            table: table.to_owned(),
            buf: SqlBuf { text: format!("UPDATE {table} SET "), binds: vec![] },
            cols: vec![],
        }
    }

    pub(crate) fn set(&mut self, col: &str, b: Bind) -> &mut Self {
        if !self.cols.is_empty() {
            self.buf.push(", ");
        }
        self.cols.push((col.to_owned(), b.clone()));
        self.buf.push(col);
        self.buf.push(" = ");
        match b {
            // A bound NULL has a type on PostgreSQL (text, as sqlx binds it), which an
            // integer column refuses; the literal has none.
            Bind::Null => self.buf.push("NULL"),
            b => self.buf.bind(b),
        }
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cols.is_empty()
    }

    /// Runs the update on row `id` inside a transaction; the number of rows changed (0
    /// when absent).
    pub(crate) async fn execute_in(mut self, tx: &mut Tx<'_>, id: i64) -> std::result::Result<u64, sqlx::Error> {
        let before = if crate::audit::active() { self.current(tx, id).await? } else { None };
        self.buf.push(" WHERE id = ");
        self.buf.bind(Bind::Int(id));
        let r = bind_query(&self.buf.text, &self.buf.binds).execute(&mut **tx).await?;
        if let Some(before) = before {
            for ((col, after), before) in self.cols.iter().zip(before) {
                let after = match after {
                    Bind::Int(i) => serde_json::Value::from(*i),
                    Bind::Text(s) => serde_json::Value::from(s.as_str()),
                    Bind::Null => serde_json::Value::Null,
                };
                let before = match (before, &after) {
                    (None, _) => serde_json::Value::Null,
                    (Some(b), serde_json::Value::Number(_)) => {
                        b.parse::<i64>().map(serde_json::Value::from).unwrap_or(serde_json::Value::from(b))
                    }
                    (Some(b), _) => serde_json::Value::from(b),
                };
                if before != after {
                    crate::audit::change(col, before, after);
                }
            }
        }
        Ok(r.rows_affected())
    }

    /// Runs the update on row `id` in a transaction of its own; the number of rows
    /// changed (nothing is committed when it is 0).
    pub(crate) async fn execute(self, store: &Store, id: i64) -> std::result::Result<u64, StoreError> {
        let mut tx = store.write().await?;
        let n = self.execute_in(&mut tx, id).await?;
        if n > 0 {
            tx.commit().await?;
        }
        Ok(n)
    }

    /// The row's values of the patched columns, as text.
    async fn current(&self, tx: &mut Tx<'_>, id: i64) -> std::result::Result<Option<Vec<Option<String>>>, sqlx::Error> {
        use sqlx::Row;
        let cols: Vec<String> = self.cols.iter().map(|(c, _)| format!("CAST({c} AS TEXT)")).collect();
        let sql = format!("SELECT {} FROM {} WHERE id = $1", cols.join(", "), self.table);
        let row = sqlx::query(AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await?;
        row.map(|r| (0..self.cols.len()).map(|i| r.try_get::<Option<String>, _>(i)).collect()).transpose()
    }
}

impl From<String> for Bind {
    fn from(s: String) -> Self {
        Bind::Text(s)
    }
}

impl From<&str> for Bind {
    fn from(s: &str) -> Self {
        Bind::Text(s.to_owned())
    }
}

impl From<i64> for Bind {
    fn from(i: i64) -> Self {
        Bind::Int(i)
    }
}

impl From<bool> for Bind {
    fn from(b: bool) -> Self {
        Bind::Int(i64::from(b))
    }
}

impl<T: Into<Bind>> From<Option<T>> for Bind {
    fn from(o: Option<T>) -> Self {
        o.map_or(Bind::Null, Into::into)
    }
}

/// A query over SQL built by this crate from its own fragments and `$N` placeholders.
pub(crate) fn bind_query<'q>(sql: &str, binds: &[Bind]) -> Query<'q, Any, AnyArguments> {
    let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()));
    for b in binds {
        q = match b {
            Bind::Int(i) => q.bind(*i),
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Null => q.bind(None::<String>),
        };
    }
    q
}

/// Like [`bind_query`], mapping rows to `T`.
pub(crate) fn bind_query_as<'q, T>(sql: &str, binds: &[Bind]) -> QueryAs<'q, Any, T, AnyArguments>
where
    T: for<'r> FromRow<'r, AnyRow>,
{
    let mut q = sqlx::query_as(AssertSqlSafe(sql.to_owned()));
    for b in binds {
        q = match b {
            Bind::Int(i) => q.bind(*i),
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Null => q.bind(None::<String>),
        };
    }
    q
}

impl Store {
    /// Runs a list query: the matching rows of the requested page and the total count.
    pub(crate) async fn fetch_page<T>(&self, spec: &ListSpec, q: &ListQuery, scopes: &[Scope]) -> Result<Page<T>>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let (rows, count) = page_statements(spec, q, scopes)?;
        let items: Vec<T> = bind_query_as(&rows.text, &rows.binds).fetch_all(self.pool()).await?;
        let size = match count {
            None => items.len() as i64,
            Some(c) => {
                let (n,): (i64,) = bind_query_as(&c.text, &c.binds).fetch_one(self.pool()).await?;
                n
            }
        };
        Ok(Page { items, size })
    }
}

/// A page's statements: its rows, and, when it is limited, the count of every row the
/// filter matches (from the facets' counts when they answer it, else over the bare
/// table when nothing filters).
pub(crate) fn page_statements(spec: &ListSpec, q: &ListQuery, scopes: &[Scope]) -> Result<(SqlBuf, Option<SqlBuf>)> {
    let mut filter = SqlBuf::default();
    compile_where(q, spec, scopes, &mut filter)?;
    let mut rows = SqlBuf { text: format!("{}{}", spec.select, filter.text), binds: filter.binds.clone() };
    compile_order_limit(q, spec, &mut rows)?;
    let count = q.limit.map(|_| {
        if let Some(c) = spec.facets.filter(|_| scopes.is_empty()).and_then(|f| facet_count(spec, f, q)) {
            return c;
        }
        let from = match spec.count_all_from {
            Some(bare) if q.filter.is_none() && scopes.is_empty() => bare.to_owned(),
            _ => count_from(spec.from, &filter.text),
        };
        SqlBuf { text: format!("SELECT COUNT(*) FROM {from}{}", filter.text), binds: filter.binds }
    });
    Ok((rows, count))
}

/// The count of `q`'s rows summed from the counts of `facets`, when its filter (if any)
/// names only fields they answer.
fn facet_count(spec: &ListSpec, facets: &Facets, q: &ListQuery) -> Option<SqlBuf> {
    let mut out = SqlBuf {
        text: format!("SELECT CAST(COALESCE(SUM({}), 0) AS BIGINT) FROM {}", facets.rows, facets.from),
        binds: vec![],
    };
    if let Some(filter) = &q.filter {
        out.push(" WHERE ");
        compile_facet_expr(filter, spec, facets, &mut out)?;
    }
    Some(out)
}

/// The count's `FROM`: `from` without the `LEFT JOIN`s that neither `filter` nor a join
/// kept after them refers to. A left join on the joined table's key (`LEFT JOIN t x ON
/// x.id = ...`) gives each row at most one partner and never drops a row, so leaving it
/// out cannot change the count; it only costs a lookup for every row counted (most of
/// the time of the server list's filtered page). Inner joins, and left joins of any
/// other shape, stay; a `from` with an inner join after a left join stays whole.
fn count_from(from: &str, filter: &str) -> String {
    let from = from.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut parts = from.split(" LEFT JOIN ");
    let base = parts.next().unwrap_or_default();
    let joins: Vec<&str> = parts.collect();
    if joins.iter().any(|j| j.contains(" JOIN ")) {
        return from.clone();
    }
    let mut needed = filter.to_owned();
    let mut kept = vec![];
    for join in joins.iter().rev() {
        let words: Vec<&str> = join.splitn(4, ' ').collect();
        let droppable = match words[..] {
            [_, alias, "ON", on] => {
                let on_key = on.strip_prefix(alias).and_then(|r| r.strip_prefix(".id = "));
                on_key.is_some_and(|rest| !rest.contains(' ')) && !refers_to(&needed, alias)
            }
            _ => false,
        };
        if !droppable {
            needed.push(' ');
            needed.push_str(join);
            kept.push(*join);
        }
    }
    kept.reverse();
    std::iter::once(base).chain(kept).collect::<Vec<_>>().join(" LEFT JOIN ")
}

/// Whether `sql` names a column of `alias` (`alias.`, not inside a longer name).
fn refers_to(sql: &str, alias: &str) -> bool {
    sql.match_indices(&format!("{alias}.")).any(|(at, _)| {
        sql[..at].chars().next_back().is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ListSpec = ListSpec {
        select: "SELECT id FROM t",
        from: "t",
        count_all_from: None,
        facets: None,
        fields: &[
            Field::new("id", "t.id", FieldType::Int),
            Field::new("name", "t.name", FieldType::Text),
            Field::new("is_new", "t.is_new", FieldType::Bool),
        ],
        tiebreak: "t.id ASC",
    };

    fn compile(w: &str) -> Result<SqlBuf> {
        let q = ListQuery::parse(Some(w), Some("name desc"), Some("10,5")).unwrap();
        let mut out = SqlBuf::default();
        compile_where(&q, &SPEC, &[Scope { sql: "t.owner = ?", value: Bind::Int(7) }], &mut out)?;
        compile_order_limit(&q, &SPEC, &mut out)?;
        Ok(out)
    }

    #[test]
    fn the_count_leaves_out_the_left_joins_nothing_needs() {
        let from = "servers s JOIN locations l ON l.id = s.location_id \
                    LEFT JOIN racks r ON r.id = s.rack_id LEFT JOIN users o ON o.id = s.owner_id \
                    LEFT JOIN tasks lt ON lt.id = s.last_task_id";
        let base = "servers s JOIN locations l ON l.id = s.location_id";
        assert_eq!(count_from(from, " WHERE s.state = ?"), base);
        assert_eq!(
            count_from(from, " WHERE (o.email IS NULL)"),
            format!("{base} LEFT JOIN users o ON o.id = s.owner_id")
        );
        assert_eq!(
            count_from(from, " WHERE r.name = ? OR lt.status = ?"),
            format!("{base} LEFT JOIN racks r ON r.id = s.rack_id LEFT JOIN tasks lt ON lt.id = s.last_task_id")
        );
        // `lt.` is not `t.`: a longer alias or a column name that ends in the alias.
        let t = "servers s LEFT JOIN os_templates t ON t.id = s.os_template_id";
        assert_eq!(count_from(t, " WHERE lt.id = ? AND s.t = ?"), "servers s");
        assert_eq!(count_from(t, " WHERE t.name = ?"), t);
        // A join another kept join needs stays with it.
        let chain = "ips i LEFT JOIN servers s ON s.id = i.server_id LEFT JOIN users o ON o.id = s.owner_id";
        assert_eq!(count_from(chain, " WHERE o.email = ?"), chain);
        // Joins that may repeat or drop rows stay.
        let many = "switch_ports p LEFT JOIN switch_connections c ON c.port_id = p.id";
        assert_eq!(count_from(many, ""), many);
        let inner_after = "a x LEFT JOIN b y ON y.id = x.b JOIN c z ON z.id = x.c";
        assert_eq!(count_from(inner_after, ""), inner_after);
    }

    #[test]
    fn a_page_is_counted_from_the_facets_when_they_answer_its_filter() {
        static FACETS: Facets = Facets {
            from: "counts f",
            rows: "f.n",
            fields: &[("name", Facet::Value("f.name")), ("is_new", Facet::Presence("f.set"))],
        };
        const COUNTED: ListSpec = ListSpec { facets: Some(&FACETS), ..SPEC };
        let count = |w: Option<&str>, scopes: &[Scope]| {
            let q = ListQuery::parse(w, None, Some("0,5")).unwrap();
            let c = page_statements(&COUNTED, &q, scopes).unwrap().1.unwrap();
            (c.text, c.binds)
        };
        assert_eq!(count(None, &[]).0, "SELECT CAST(COALESCE(SUM(f.n), 0) AS BIGINT) FROM counts f");
        assert_eq!(
            count(Some("NOT (name EQ 'a') OR is_new IS null"), &[]),
            (
                "SELECT CAST(COALESCE(SUM(f.n), 0) AS BIGINT) FROM counts f WHERE (NOT ((f.name = $1)) OR (f.set = 0))"
                    .to_owned(),
                vec![Bind::Text("a".into())]
            )
        );
        // A field the facets lack, a presence compared with a value, or a scope: the
        // rows themselves are counted.
        for w in ["name EQ a AND id GT 3", "is_new EQ true"] {
            assert!(count(Some(w), &[]).0.starts_with("SELECT COUNT(*) FROM t WHERE"), "{w}");
        }
        let mine = [Scope { sql: "t.owner = ?", value: Bind::Int(7) }];
        assert!(count(Some("name EQ a"), &mine).0.starts_with("SELECT COUNT(*) FROM t WHERE"));
        // No limit, no count: the page's own rows are its size.
        let q = ListQuery::parse(Some("name EQ a"), None, None).unwrap();
        assert!(page_statements(&COUNTED, &q, &[]).unwrap().1.is_none());
    }

    #[test]
    fn values_are_bound_never_pasted() {
        let out = compile("name EQ 'x'' OR 1=1 --' AND NOT is_new EQ false OR id IS null").unwrap();
        assert_eq!(
            out.text,
            " WHERE t.owner = $1 AND (((t.name = $2) AND NOT ((t.is_new = $3))) OR (t.id IS NULL)) \
             ORDER BY t.name DESC, t.id ASC LIMIT 5 OFFSET 10"
        );
        assert_eq!(out.binds, vec![Bind::Int(7), Bind::Text("x' OR 1=1 --".into()), Bind::Int(0)]);
    }

    #[test]
    fn cp_is_case_insensitive_like() {
        let out = compile("name CP '%SRV-1%'").unwrap();
        assert!(out.text.contains("(LOWER(t.name) LIKE $2)"), "{}", out.text);
        assert_eq!(out.binds[1], Bind::Text("%srv-1%".into()));
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused() {
        let e = compile("password EQ 'x'").unwrap_err().to_string();
        assert!(e.contains("unknown field 'password'") && e.contains("known fields: id, name, is_new"), "{e}");
        assert!(compile("id EQ 'abc'").unwrap_err().to_string().contains("expects an integer"));
        assert!(compile("is_new EQ 7").unwrap_err().to_string().contains("true or false"));
        assert!(compile("id EQ null").unwrap_err().to_string().contains("IS null"));
        let q = ListQuery::parse(None, Some("secret asc"), None).unwrap();
        let e = compile_order_limit(&q, &SPEC, &mut SqlBuf::default()).unwrap_err().to_string();
        assert!(e.starts_with("orderby: unknown field 'secret'"), "{e}");
    }
}
