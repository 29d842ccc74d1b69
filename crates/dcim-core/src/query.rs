//! The DCImanager list query language: `where=`, `orderby=` and `limit=`.
//!
//! Every DCImanager 6 list endpoint accepts these three query parameters, and
//! clients (billing systems, scripts, the web UI) build them by hand. This
//! module turns the raw parameter strings into a small typed AST
//! ([`ListQuery`], [`Expr`], [`OrderBy`], [`Limit`]) or a [`QueryError`] that
//! names the parameter, the byte position of the offending token and what was
//! wrong, so the API can answer with a precise 400.
//!
//! What this module must NOT do: no I/O, no SQL and no knowledge of tables or
//! columns. It never produces SQL text; the storage layer is responsible for
//! checking the referenced field names ([`Expr::fields`]) against a whitelist
//! for the resource being listed and for binding every [`Value`] as a query
//! parameter. Keeping parsing separate from SQL generation is what makes input
//! like `name EQ 'x'; DROP TABLE users` harmless: it is rejected here
//! (trailing input), and anything accepted is only ever data.
//!
//! # `where` grammar
//!
//! Operators and keywords are case-insensitive (`EQ`/`eq`, `AND`/`and`,
//! `null`/`NULL`).
//!
//! ```text
//! expr      := or
//! or        := and ( OR and )*
//! and       := unary ( AND unary )*
//! unary     := NOT unary | '(' or ')' | predicate
//! predicate := field op value | field IS [NOT] null
//! op        := EQ | NE | GT | LT | GE | LE | CP        (CP = SQL LIKE, `%` wildcards)
//! field     := ident ( '.' ident )*                    ident = [A-Za-z_][A-Za-z0-9_]*
//! value     := '…'            single-quoted string, `''` inside is a literal quote → Str
//!            | -?[0-9]+       integer → Int (must fit in i64)
//!            | true | false   → Bool
//!            | null           → Null
//!            | bare word      letters, digits, `_ . : - @` → Str (`state EQ ok`)
//! ```
//!
//! `AND` binds tighter than `OR`; both are left-associative. Limits: the input
//! is at most [`MAX_INPUT_LEN`] bytes, a field name at most [`MAX_FIELD_LEN`]
//! bytes, and parentheses plus `NOT` nest at most [`MAX_DEPTH`] levels.
//!
//! # `orderby` and `limit`
//!
//! `orderby` is a comma-separated list of `field [asc|desc]` (default `asc`),
//! e.g. `name asc, id desc`. `limit` is `<count>` or `<offset>,<count>` with
//! optional spaces around the comma, e.g. `10` or `20, 10`.

/// Longest accepted `where`/`orderby`/`limit` string, in bytes.
pub const MAX_INPUT_LEN: usize = 4096;
/// Longest accepted field name (including dots), in bytes.
pub const MAX_FIELD_LEN: usize = 64;
/// Deepest accepted nesting of parentheses and `NOT`.
pub const MAX_DEPTH: usize = 32;

const WHERE: &str = "where";
const ORDERBY: &str = "orderby";
const LIMIT: &str = "limit";

/// A literal on the right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Null,
}

/// Comparison operator of a [`Expr::Cmp`] predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    /// `CP`: SQL `LIKE` with `%` wildcards.
    Cp,
}

impl CmpOp {
    fn from_keyword(word: &str) -> Option<CmpOp> {
        const OPS: [(&str, CmpOp); 7] = [
            ("EQ", CmpOp::Eq),
            ("NE", CmpOp::Ne),
            ("GT", CmpOp::Gt),
            ("LT", CmpOp::Lt),
            ("GE", CmpOp::Ge),
            ("LE", CmpOp::Le),
            ("CP", CmpOp::Cp),
        ];
        OPS.iter().find(|(kw, _)| word.eq_ignore_ascii_case(kw)).map(|&(_, op)| op)
    }
}

/// A parsed `where` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: String,
        op: CmpOp,
        value: Value,
    },
    /// `f IS null` (`negated: false`) / `f IS NOT null` (`negated: true`).
    IsNull {
        field: String,
        negated: bool,
    },
}

impl Expr {
    /// Every field name referenced by the expression, in order of first
    /// appearance, without duplicates.
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.collect_fields(out);
                b.collect_fields(out);
            }
            Expr::Not(e) => e.collect_fields(out),
            Expr::Cmp { field, .. } | Expr::IsNull { field, .. } => {
                if !out.contains(&field.as_str()) {
                    out.push(field);
                }
            }
        }
    }
}

/// One `orderby` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    pub field: String,
    pub desc: bool,
}

/// A parsed `limit`: skip `offset` rows, return at most `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub offset: u64,
    pub count: u64,
}

/// All three list parameters together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    pub filter: Option<Expr>,
    pub order: Vec<OrderBy>,
    pub limit: Option<Limit>,
}

impl ListQuery {
    /// Parses the raw `where`, `orderby` and `limit` parameters.
    ///
    /// A parameter that is absent, empty or only whitespace (`?where=`) is
    /// treated as not given; anything else must parse.
    pub fn parse(where_: Option<&str>, orderby: Option<&str>, limit: Option<&str>) -> Result<ListQuery, QueryError> {
        fn given(s: Option<&str>) -> Option<&str> {
            s.filter(|s| !s.trim().is_empty())
        }
        Ok(ListQuery {
            filter: given(where_).map(parse_where).transpose()?,
            order: given(orderby).map(parse_orderby).transpose()?.unwrap_or_default(),
            limit: given(limit).map(parse_limit).transpose()?,
        })
    }
}

/// Why a parameter was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message} at position {position}")]
pub struct QueryError {
    /// `"where"`, `"orderby"` or `"limit"`.
    pub param: &'static str,
    /// Byte offset of the offending token in the parameter string (its length
    /// when the input ended too early).
    pub position: usize,
    pub message: String,
}

fn error(param: &'static str, position: usize, message: impl Into<String>) -> QueryError {
    QueryError { param, position, message: message.into() }
}

fn check_input(param: &'static str, s: &str) -> Result<(), QueryError> {
    if s.len() > MAX_INPUT_LEN {
        return Err(error(param, MAX_INPUT_LEN, format!("input longer than {MAX_INPUT_LEN} bytes")));
    }
    if s.trim().is_empty() {
        return Err(error(param, 0, "empty expression"));
    }
    Ok(())
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn validate_field(param: &'static str, name: &str, position: usize) -> Result<(), QueryError> {
    if name.len() > MAX_FIELD_LEN {
        return Err(error(param, position, format!("field name longer than {MAX_FIELD_LEN} characters")));
    }
    if !name.split('.').all(is_ident) {
        return Err(error(param, position, format!("invalid field name '{name}'")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// where: lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    LParen,
    RParen,
    /// A bare word: keyword, operator, field name or unquoted value.
    Word(&'a str),
    /// A single-quoted string with `''` already unescaped.
    Str(String),
    /// Any character that cannot start a token; the parser reports it with
    /// context (e.g. as trailing input).
    Junk(char),
}

#[derive(Debug, Clone)]
struct Token<'a> {
    tok: Tok<'a>,
    pos: usize,
}

impl Token<'_> {
    fn describe(&self) -> String {
        match &self.tok {
            Tok::LParen => "'('".to_owned(),
            Tok::RParen => "')'".to_owned(),
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(_) => "a quoted string".to_owned(),
            Tok::Junk(c) => format!("'{c}'"),
        }
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '@')
}

fn lex(s: &str) -> Result<Vec<Token<'_>>, QueryError> {
    let mut tokens = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((pos, c)) = chars.next() {
        let tok = match c {
            c if c.is_whitespace() => continue,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '\'' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err(error(WHERE, pos, "unterminated string")),
                        Some((_, '\'')) => {
                            if chars.next_if(|&(_, c)| c == '\'').is_some() {
                                value.push('\'');
                            } else {
                                break;
                            }
                        }
                        Some((_, ch)) => value.push(ch),
                    }
                }
                Tok::Str(value)
            }
            c if is_word_char(c) => {
                let mut end = pos + c.len_utf8();
                while let Some((i, ch)) = chars.next_if(|&(_, ch)| is_word_char(ch)) {
                    end = i + ch.len_utf8();
                }
                Tok::Word(&s[pos..end])
            }
            other => Tok::Junk(other),
        };
        tokens.push(Token { tok, pos });
    }
    Ok(tokens)
}

// ---------------------------------------------------------------------------
// where: parser
// ---------------------------------------------------------------------------

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    idx: usize,
    depth: usize,
    /// Position reported when the input ends too early.
    end: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Token<'a>> {
        self.tokens.get(self.idx)
    }

    fn next(&mut self) -> Option<Token<'a>> {
        let tok = self.tokens.get(self.idx).cloned();
        if tok.is_some() {
            self.idx += 1;
        }
        tok
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.peek().is_some_and(|t| t.is_keyword(kw)) {
            self.idx += 1;
            true
        } else {
            false
        }
    }

    fn enter(&mut self, pos: usize) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(error(WHERE, pos, format!("expression nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn parse_or(&mut self) -> Result<Expr, QueryError> {
        let mut lhs = self.parse_and()?;
        while self.eat_keyword("OR") {
            let rhs = self.parse_and()?;
            lhs = Expr::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn parse_and(&mut self) -> Result<Expr, QueryError> {
        let mut lhs = self.parse_unary()?;
        while self.eat_keyword("AND") {
            let rhs = self.parse_unary()?;
            lhs = Expr::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn parse_unary(&mut self) -> Result<Expr, QueryError> {
        let Some(tok) = self.next() else {
            return Err(error(WHERE, self.end, "unexpected end of input, expected a condition"));
        };
        if tok.is_keyword("NOT") {
            self.enter(tok.pos)?;
            let inner = self.parse_unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        match tok.tok {
            Tok::LParen => {
                self.enter(tok.pos)?;
                if let Some(close) = self.peek().filter(|t| t.tok == Tok::RParen) {
                    return Err(error(WHERE, close.pos, "empty parentheses"));
                }
                let inner = self.parse_or()?;
                match self.next() {
                    Some(Token { tok: Tok::RParen, .. }) => {}
                    None => {
                        return Err(error(WHERE, tok.pos, "unbalanced parentheses: '(' is never closed"));
                    }
                    Some(other) => {
                        return Err(error(
                            WHERE,
                            other.pos,
                            format!("expected AND, OR or ')', found {}", other.describe()),
                        ));
                    }
                }
                self.depth -= 1;
                Ok(inner)
            }
            _ => self.parse_predicate(tok),
        }
    }

    fn parse_predicate(&mut self, tok: Token<'a>) -> Result<Expr, QueryError> {
        let field = match tok.tok {
            Tok::Word(_) if tok.is_keyword("AND") || tok.is_keyword("OR") => {
                return Err(error(WHERE, tok.pos, format!("expected a condition, found {}", tok.describe())));
            }
            Tok::Word(w) => {
                validate_field(WHERE, w, tok.pos)?;
                w.to_owned()
            }
            Tok::RParen => {
                return Err(error(WHERE, tok.pos, "unbalanced parentheses: unexpected ')'"));
            }
            Tok::Str(_) => {
                return Err(error(WHERE, tok.pos, "expected a field name, found a quoted string"));
            }
            Tok::Junk(c) => {
                return Err(error(WHERE, tok.pos, format!("unexpected character '{c}'")));
            }
            Tok::LParen => unreachable!("'(' is handled by parse_unary"),
        };

        let Some(op_tok) = self.next() else {
            return Err(error(WHERE, self.end, format!("missing operator after field '{field}'")));
        };
        let op_word = match op_tok.tok {
            Tok::Word(_) if op_tok.is_keyword("AND") || op_tok.is_keyword("OR") => {
                return Err(error(WHERE, op_tok.pos, format!("missing operator after field '{field}'")));
            }
            Tok::Word(w) => w,
            _ => {
                return Err(error(WHERE, op_tok.pos, format!("expected an operator, found {}", op_tok.describe())));
            }
        };

        if op_tok.is_keyword("IS") {
            let negated = self.eat_keyword("NOT");
            return match self.next() {
                Some(t) if t.is_keyword("null") => Ok(Expr::IsNull { field, negated }),
                Some(t) => Err(error(WHERE, t.pos, format!("expected 'null' after IS, found {}", t.describe()))),
                None => Err(error(WHERE, self.end, "expected 'null' after IS")),
            };
        }

        let Some(op) = CmpOp::from_keyword(op_word) else {
            return Err(error(WHERE, op_tok.pos, format!("unknown operator '{op_word}'")));
        };
        let value = self.parse_value(op_word)?;
        Ok(Expr::Cmp { field, op, value })
    }

    fn parse_value(&mut self, op: &str) -> Result<Value, QueryError> {
        let missing = |pos| error(WHERE, pos, format!("missing value after '{op}'"));
        let Some(tok) = self.peek() else {
            return Err(missing(self.end));
        };
        let pos = tok.pos;
        let value = match &tok.tok {
            Tok::Str(s) => Value::Str(s.clone()),
            Tok::Word(_) if tok.is_keyword("AND") || tok.is_keyword("OR") => {
                return Err(missing(pos));
            }
            Tok::Word(w) => word_value(w, pos)?,
            Tok::LParen | Tok::RParen => return Err(missing(pos)),
            Tok::Junk(c) => {
                return Err(error(WHERE, pos, format!("unexpected character '{c}'")));
            }
        };
        self.idx += 1;
        Ok(value)
    }
}

fn word_value(w: &str, pos: usize) -> Result<Value, QueryError> {
    if w.eq_ignore_ascii_case("true") {
        return Ok(Value::Bool(true));
    }
    if w.eq_ignore_ascii_case("false") {
        return Ok(Value::Bool(false));
    }
    if w.eq_ignore_ascii_case("null") {
        return Ok(Value::Null);
    }
    let digits = w.strip_prefix('-').unwrap_or(w);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return w.parse::<i64>().map(Value::Int).map_err(|_| error(WHERE, pos, format!("integer '{w}' out of range")));
    }
    Ok(Value::Str(w.to_owned()))
}

/// Parses a `where=` expression.
pub fn parse_where(s: &str) -> Result<Expr, QueryError> {
    check_input(WHERE, s)?;
    let tokens = lex(s)?;
    let mut parser = Parser { tokens, idx: 0, depth: 0, end: s.len() };
    let expr = parser.parse_or()?;
    if let Some(tok) = parser.peek() {
        let message = if tok.tok == Tok::RParen {
            "unbalanced parentheses: unexpected ')'".to_owned()
        } else {
            format!("unexpected trailing input {}", tok.describe())
        };
        return Err(error(WHERE, tok.pos, message));
    }
    Ok(expr)
}

// ---------------------------------------------------------------------------
// orderby and limit
// ---------------------------------------------------------------------------

/// Whitespace-separated words of `s` with their byte offsets plus `base`.
fn words(s: &str, base: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(st)) => {
                out.push((base + st, &s[st..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(st) = start {
        out.push((base + st, &s[st..]));
    }
    out
}

/// Parses an `orderby=` list such as `name asc, id desc`.
pub fn parse_orderby(s: &str) -> Result<Vec<OrderBy>, QueryError> {
    check_input(ORDERBY, s)?;
    let mut order = Vec::new();
    let mut base = 0;
    for item in s.split(',') {
        let item_start = base;
        base += item.len() + 1;
        let (field_pos, field, desc) = match words(item, item_start).as_slice() {
            [] => return Err(error(ORDERBY, item_start, "empty sort item")),
            &[(pos, field)] => (pos, field, false),
            &[(pos, field), (dir_pos, dir)] => {
                let desc = if dir.eq_ignore_ascii_case("desc") {
                    true
                } else if dir.eq_ignore_ascii_case("asc") {
                    false
                } else {
                    return Err(error(ORDERBY, dir_pos, format!("expected 'asc' or 'desc', found '{dir}'")));
                };
                (pos, field, desc)
            }
            &[_, _, (pos, extra), ..] => {
                return Err(error(ORDERBY, pos, format!("unexpected trailing input '{extra}'")));
            }
        };
        validate_field(ORDERBY, field, field_pos)?;
        order.push(OrderBy { field: field.to_owned(), desc });
    }
    Ok(order)
}

fn parse_count(part: &str, base: usize, what: &str) -> Result<u64, QueryError> {
    let trimmed = part.trim();
    let pos = base + (part.len() - part.trim_start().len());
    if trimmed.is_empty() {
        return Err(error(LIMIT, pos, format!("missing {what}")));
    }
    if !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error(LIMIT, pos, format!("expected a non-negative integer {what}, found '{trimmed}'")));
    }
    trimmed.parse().map_err(|_| error(LIMIT, pos, format!("{what} '{trimmed}' out of range")))
}

/// Parses a `limit=` value: `<count>` or `<offset>,<count>`.
pub fn parse_limit(s: &str) -> Result<Limit, QueryError> {
    check_input(LIMIT, s)?;
    match s.split_once(',') {
        None => Ok(Limit { offset: 0, count: parse_count(s, 0, "count")? }),
        Some((offset, count)) => Ok(Limit {
            offset: parse_count(offset, 0, "offset")?,
            count: parse_count(count, offset.len() + 1, "count")?,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(field: &str, op: CmpOp, value: Value) -> Expr {
        Expr::Cmp { field: field.to_owned(), op, value }
    }

    fn s(v: &str) -> Value {
        Value::Str(v.to_owned())
    }

    fn and(a: Expr, b: Expr) -> Expr {
        Expr::And(Box::new(a), Box::new(b))
    }

    fn or(a: Expr, b: Expr) -> Expr {
        Expr::Or(Box::new(a), Box::new(b))
    }

    fn not(a: Expr) -> Expr {
        Expr::Not(Box::new(a))
    }

    fn is_null(field: &str, negated: bool) -> Expr {
        Expr::IsNull { field: field.to_owned(), negated }
    }

    /// Asserts that `parse_where(input)` fails at `position` with a message
    /// containing `needle`.
    fn where_err(input: &str, position: usize, needle: &str) {
        let err = parse_where(input).expect_err(input);
        assert_eq!(err.param, "where", "{input}: {err}");
        assert_eq!(err.position, position, "{input}: {err}");
        assert!(err.message.contains(needle), "{input}: message {:?} does not contain {needle:?}", err.message);
    }

    // ----- where: the examples from real clients -----

    #[test]
    fn example_is_null_and() {
        assert_eq!(
            parse_where("(owner_email IS null) AND is_new EQ false").unwrap(),
            and(is_null("owner_email", false), cmp("is_new", CmpOp::Eq, Value::Bool(false)))
        );
    }

    #[test]
    fn example_cp() {
        assert_eq!(parse_where("name CP '%srv-1%'").unwrap(), cmp("name", CmpOp::Cp, s("%srv-1%")));
    }

    #[test]
    fn example_not_binds_tighter_than_and() {
        assert_eq!(
            parse_where("NOT domain CP '%extended.%' AND (ipnet EQ 12)").unwrap(),
            and(not(cmp("domain", CmpOp::Cp, s("%extended.%"))), cmp("ipnet", CmpOp::Eq, Value::Int(12)))
        );
    }

    #[test]
    fn example_or() {
        assert_eq!(
            parse_where("id EQ 5 OR id EQ 6").unwrap(),
            or(cmp("id", CmpOp::Eq, Value::Int(5)), cmp("id", CmpOp::Eq, Value::Int(6)))
        );
    }

    #[test]
    fn example_dotted_field() {
        assert_eq!(parse_where("location.id EQ 3").unwrap(), cmp("location.id", CmpOp::Eq, Value::Int(3)));
        assert_eq!(parse_where("owner.email EQ 'a@b.c'").unwrap(), cmp("owner.email", CmpOp::Eq, s("a@b.c")));
    }

    #[test]
    fn example_doubled_quote() {
        assert_eq!(
            parse_where("email EQ 'o''brien@example.com'").unwrap(),
            cmp("email", CmpOp::Eq, s("o'brien@example.com"))
        );
    }

    #[test]
    fn example_is_not_null() {
        assert_eq!(parse_where("owner IS NOT null").unwrap(), is_null("owner", true));
    }

    // ----- where: grammar details -----

    #[test]
    fn all_operators() {
        for (word, op) in [
            ("EQ", CmpOp::Eq),
            ("NE", CmpOp::Ne),
            ("GT", CmpOp::Gt),
            ("LT", CmpOp::Lt),
            ("GE", CmpOp::Ge),
            ("LE", CmpOp::Le),
            ("CP", CmpOp::Cp),
        ] {
            let expected = cmp("f", op, Value::Int(1));
            assert_eq!(parse_where(&format!("f {word} 1")).unwrap(), expected);
            let lower = word.to_ascii_lowercase();
            assert_eq!(parse_where(&format!("f {lower} 1")).unwrap(), expected);
        }
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(
            parse_where("a eq 1 and not b Is Not NULL or c iS nUlL").unwrap(),
            or(and(cmp("a", CmpOp::Eq, Value::Int(1)), not(is_null("b", true))), is_null("c", false))
        );
        assert_eq!(parse_where("a EQ TRUE").unwrap(), cmp("a", CmpOp::Eq, Value::Bool(true)));
        assert_eq!(parse_where("a EQ False").unwrap(), cmp("a", CmpOp::Eq, Value::Bool(false)));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            parse_where("a EQ 1 OR b EQ 2 AND c EQ 3").unwrap(),
            or(
                cmp("a", CmpOp::Eq, Value::Int(1)),
                and(cmp("b", CmpOp::Eq, Value::Int(2)), cmp("c", CmpOp::Eq, Value::Int(3)))
            )
        );
        assert_eq!(
            parse_where("(a EQ 1 OR b EQ 2) AND c EQ 3").unwrap(),
            and(
                or(cmp("a", CmpOp::Eq, Value::Int(1)), cmp("b", CmpOp::Eq, Value::Int(2))),
                cmp("c", CmpOp::Eq, Value::Int(3))
            )
        );
    }

    #[test]
    fn chains_are_left_associative() {
        assert_eq!(
            parse_where("a EQ 1 AND b EQ 2 AND c EQ 3").unwrap(),
            and(
                and(cmp("a", CmpOp::Eq, Value::Int(1)), cmp("b", CmpOp::Eq, Value::Int(2))),
                cmp("c", CmpOp::Eq, Value::Int(3))
            )
        );
        assert_eq!(
            parse_where("a EQ 1 OR b EQ 2 OR c EQ 3").unwrap(),
            or(
                or(cmp("a", CmpOp::Eq, Value::Int(1)), cmp("b", CmpOp::Eq, Value::Int(2))),
                cmp("c", CmpOp::Eq, Value::Int(3))
            )
        );
    }

    #[test]
    fn not_of_parenthesised_and_double_not() {
        assert_eq!(
            parse_where("NOT (a EQ 1 OR b EQ 2)").unwrap(),
            not(or(cmp("a", CmpOp::Eq, Value::Int(1)), cmp("b", CmpOp::Eq, Value::Int(2))))
        );
        assert_eq!(parse_where("NOT NOT a EQ 1").unwrap(), not(not(cmp("a", CmpOp::Eq, Value::Int(1)))));
    }

    #[test]
    fn whitespace_is_flexible() {
        assert_eq!(
            parse_where("  (a EQ 1)AND(b\tEQ\n'x')  ").unwrap(),
            and(cmp("a", CmpOp::Eq, Value::Int(1)), cmp("b", CmpOp::Eq, s("x")))
        );
    }

    #[test]
    fn value_kinds() {
        let v = |input: &str| match parse_where(input).unwrap() {
            Expr::Cmp { value, .. } => value,
            other => panic!("not a comparison: {other:?}"),
        };
        assert_eq!(v("f EQ 42"), Value::Int(42));
        assert_eq!(v("f EQ -7"), Value::Int(-7));
        assert_eq!(v("f EQ 0"), Value::Int(0));
        assert_eq!(v("f EQ 9223372036854775807"), Value::Int(i64::MAX));
        assert_eq!(v("f EQ -9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(v("f EQ true"), Value::Bool(true));
        assert_eq!(v("f EQ false"), Value::Bool(false));
        assert_eq!(v("f EQ null"), Value::Null);
        assert_eq!(v("f EQ NULL"), Value::Null);
        // quoted literals are always strings
        assert_eq!(v("f EQ '42'"), s("42"));
        assert_eq!(v("f EQ 'true'"), s("true"));
        assert_eq!(v("f EQ 'null'"), s("null"));
        assert_eq!(v("f EQ ''"), s(""));
        assert_eq!(v("f EQ ''''"), s("'"));
        assert_eq!(v("f EQ 'a b (c) AND d'"), s("a b (c) AND d"));
        assert_eq!(v("f EQ 'сервер'"), s("сервер"));
        // bare words
        assert_eq!(v("state EQ ok"), s("ok"));
        assert_eq!(v("ip EQ 10.0.0.1"), s("10.0.0.1"));
        assert_eq!(v("mac EQ 52:54:00:12:34:56"), s("52:54:00:12:34:56"));
        assert_eq!(v("email EQ admin@example.com"), s("admin@example.com"));
        assert_eq!(v("name EQ srv-1_a"), s("srv-1_a"));
        assert_eq!(v("f EQ 1.5"), s("1.5"));
        assert_eq!(v("f EQ -abc"), s("-abc"));
        assert_eq!(v("f EQ 12ab"), s("12ab"));
        assert_eq!(v("f EQ -"), s("-"));
    }

    #[test]
    fn sql_injection_looking_string_is_one_value() {
        assert_eq!(parse_where("name EQ 'x'' OR 1=1 --'").unwrap(), cmp("name", CmpOp::Eq, s("x' OR 1=1 --")));
    }

    #[test]
    fn fields_lists_each_field_once_in_order() {
        let e = parse_where("(b IS null OR a EQ 1) AND NOT b EQ 2 AND location.id GT 3").unwrap();
        assert_eq!(e.fields(), vec!["b", "a", "location.id"]);
        assert_eq!(parse_where("x EQ 1").unwrap().fields(), vec!["x"]);
    }

    #[test]
    fn field_name_rules() {
        assert!(parse_where("_private EQ 1").is_ok());
        assert!(parse_where("a1.b_2.C3 EQ 1").is_ok());
        let max = "f".repeat(MAX_FIELD_LEN);
        assert!(parse_where(&format!("{max} EQ 1")).is_ok());
        where_err(&format!("x EQ 1 AND {max}g EQ 1"), 11, "longer than 64");
        where_err("1abc EQ 1", 0, "invalid field name '1abc'");
        where_err("a..b EQ 1", 0, "invalid field name 'a..b'");
        where_err("a. EQ 1", 0, "invalid field name");
        where_err(".a EQ 1", 0, "invalid field name");
        where_err("a-b EQ 1", 0, "invalid field name 'a-b'");
        where_err("имя EQ 1", 0, "invalid field name");
        where_err("'name' EQ 1", 0, "expected a field name");
    }

    // ----- where: errors and their positions -----

    #[test]
    fn empty_expression() {
        where_err("", 0, "empty expression");
        where_err("   ", 0, "empty expression");
    }

    #[test]
    fn unterminated_string() {
        where_err("name EQ 'abc", 8, "unterminated string");
        where_err("name EQ 'it''s", 8, "unterminated string");
        where_err("name EQ '", 8, "unterminated string");
    }

    #[test]
    fn unknown_operator() {
        where_err("name XX 1", 5, "unknown operator 'XX'");
        let err = parse_where("name XX 1").unwrap_err();
        assert_eq!(err.message, "unknown operator 'XX'");
        assert_eq!(err.to_string(), "where: unknown operator 'XX' at position 5");
        where_err("a EQ 1 AND b LIKE 'x'", 13, "unknown operator 'LIKE'");
        where_err("name = 'x'", 5, "expected an operator, found '='");
        where_err("name", 4, "missing operator");
        where_err("a AND b EQ 1", 2, "missing operator after field 'a'");
        where_err("name 'x'", 5, "expected an operator");
    }

    #[test]
    fn missing_value() {
        where_err("name EQ", 7, "missing value after 'EQ'");
        where_err("name EQ ", 8, "missing value");
        where_err("name EQ AND b EQ 1", 8, "missing value");
        where_err("(name EQ)", 8, "missing value");
        where_err("name EQ ;", 8, "unexpected character ';'");
    }

    #[test]
    fn is_requires_null() {
        where_err("owner IS 5", 9, "expected 'null' after IS, found '5'");
        where_err("owner IS NOT 'x'", 13, "expected 'null'");
        where_err("owner IS", 8, "expected 'null' after IS");
        where_err("owner IS NOT", 12, "expected 'null' after IS");
    }

    #[test]
    fn unbalanced_parentheses() {
        where_err("(a EQ 1", 0, "'(' is never closed");
        where_err("a EQ 1 AND ((b EQ 2)", 11, "'(' is never closed");
        where_err("a EQ 1)", 6, "unexpected ')'");
        where_err(")", 0, "unexpected ')'");
        where_err("a EQ 1 AND )", 11, "unexpected ')'");
        where_err("()", 1, "empty parentheses");
        where_err("(a EQ 1 b EQ 2)", 8, "expected AND, OR or ')', found 'b'");
    }

    #[test]
    fn dangling_connectives() {
        where_err("a EQ 1 AND", 10, "unexpected end of input");
        where_err("a EQ 1 OR ", 10, "unexpected end of input");
        where_err("NOT", 3, "unexpected end of input");
        where_err("AND a EQ 1", 0, "expected a condition, found 'AND'");
        where_err("a EQ 1 AND OR b EQ 2", 11, "expected a condition, found 'OR'");
    }

    #[test]
    fn trailing_input() {
        where_err("name EQ 'x'; DROP TABLE users", 11, "trailing input ';'");
        where_err("a EQ 1 b EQ 2", 7, "trailing input 'b'");
        where_err("a EQ 1 'x'", 7, "trailing input a quoted string");
        where_err("a EQ 1 -- comment", 7, "trailing input '--'");
        where_err("a EQ 1 (b EQ 2)", 7, "trailing input '('");
    }

    #[test]
    fn unexpected_characters() {
        where_err("; DROP TABLE users", 0, "unexpected character ';'");
        where_err("a EQ \"x\"", 5, "unexpected character '\"'");
    }

    #[test]
    fn integer_out_of_range() {
        where_err("id EQ 9223372036854775808", 6, "out of range");
        where_err("id EQ -99999999999999999999", 6, "out of range");
    }

    #[test]
    fn nesting_limit() {
        let nested = |n: usize| format!("{}a EQ 1{}", "(".repeat(n), ")".repeat(n));
        assert!(parse_where(&nested(MAX_DEPTH)).is_ok());
        where_err(&nested(MAX_DEPTH + 1), MAX_DEPTH, "nested deeper than 32");

        let nots = |n: usize| format!("{}a EQ 1", "NOT ".repeat(n));
        assert!(parse_where(&nots(MAX_DEPTH)).is_ok());
        where_err(&nots(MAX_DEPTH + 1), 4 * MAX_DEPTH, "nested deeper");

        // parentheses and NOT share one budget
        let mixed = format!("{}NOT a EQ 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        where_err(&mixed, MAX_DEPTH, "nested deeper");

        // sequential (not nested) groups do not accumulate depth
        let flat = vec!["(a EQ 1)"; 100].join(" AND ");
        assert!(parse_where(&flat).is_ok());
    }

    #[test]
    fn input_length_limit() {
        let ok = format!("name EQ '{}'", "x".repeat(MAX_INPUT_LEN - 10));
        assert_eq!(ok.len(), MAX_INPUT_LEN);
        assert!(parse_where(&ok).is_ok());
        let too_long = format!("name EQ '{}'", "x".repeat(MAX_INPUT_LEN - 9));
        where_err(&too_long, MAX_INPUT_LEN, "longer than 4096 bytes");
        // deep nesting past the limit is caught by the length check first
        let huge = format!("{}a EQ 1", "(".repeat(10_000));
        where_err(&huge, MAX_INPUT_LEN, "longer than 4096 bytes");
    }

    #[test]
    fn error_positions_are_byte_offsets() {
        // 'é' and 'ä' are two bytes each
        where_err("a EQ 'é' AND b XX 'ä'", 16, "unknown operator 'XX'");
    }

    // ----- orderby -----

    fn ob(field: &str, desc: bool) -> OrderBy {
        OrderBy { field: field.to_owned(), desc }
    }

    fn orderby_err(input: &str, position: usize, needle: &str) {
        let err = parse_orderby(input).expect_err(input);
        assert_eq!(err.param, "orderby", "{input}: {err}");
        assert_eq!(err.position, position, "{input}: {err}");
        assert!(err.message.contains(needle), "{input}: message {:?} does not contain {needle:?}", err.message);
    }

    #[test]
    fn orderby_parses() {
        assert_eq!(parse_orderby("id desc").unwrap(), vec![ob("id", true)]);
        assert_eq!(parse_orderby("id").unwrap(), vec![ob("id", false)]);
        assert_eq!(parse_orderby("name asc, id desc").unwrap(), vec![ob("name", false), ob("id", true)]);
        assert_eq!(
            parse_orderby(" name ASC ,id DESC,location.id ").unwrap(),
            vec![ob("name", false), ob("id", true), ob("location.id", false)]
        );
        assert_eq!(parse_orderby("id Desc").unwrap(), vec![ob("id", true)]);
    }

    #[test]
    fn orderby_errors() {
        orderby_err("", 0, "empty expression");
        orderby_err("  ", 0, "empty expression");
        orderby_err("id sideways", 3, "expected 'asc' or 'desc', found 'sideways'");
        orderby_err("id desc extra", 8, "trailing input 'extra'");
        orderby_err("name, id desc; DROP TABLE x", 15, "trailing input 'DROP'");
        orderby_err("id,,name", 3, "empty sort item");
        orderby_err("id,", 3, "empty sort item");
        orderby_err(",id", 0, "empty sort item");
        orderby_err("name, 1id", 6, "invalid field name '1id'");
        orderby_err("id;", 0, "invalid field name");
        let long = "f".repeat(MAX_FIELD_LEN + 1);
        orderby_err(&format!("id, {long}"), 4, "longer than 64");
        orderby_err(&"a,".repeat(3000), MAX_INPUT_LEN, "longer than 4096");
    }

    // ----- limit -----

    fn limit_err(input: &str, position: usize, needle: &str) {
        let err = parse_limit(input).expect_err(input);
        assert_eq!(err.param, "limit", "{input}: {err}");
        assert_eq!(err.position, position, "{input}: {err}");
        assert!(err.message.contains(needle), "{input}: message {:?} does not contain {needle:?}", err.message);
    }

    #[test]
    fn limit_parses() {
        assert_eq!(parse_limit("10").unwrap(), Limit { offset: 0, count: 10 });
        assert_eq!(parse_limit("20,10").unwrap(), Limit { offset: 20, count: 10 });
        assert_eq!(parse_limit(" 20 , 10 ").unwrap(), Limit { offset: 20, count: 10 });
        assert_eq!(parse_limit("0,0").unwrap(), Limit { offset: 0, count: 0 });
        assert_eq!(parse_limit("18446744073709551615").unwrap().count, u64::MAX);
    }

    #[test]
    fn limit_errors() {
        limit_err("", 0, "empty expression");
        limit_err("abc", 0, "expected a non-negative integer count, found 'abc'");
        limit_err("-5", 0, "found '-5'");
        limit_err("+5", 0, "found '+5'");
        limit_err("1.5", 0, "found '1.5'");
        limit_err("10, x", 4, "count, found 'x'");
        limit_err("x,10", 0, "offset, found 'x'");
        limit_err("1,2,3", 2, "found '2,3'");
        limit_err("10 20", 0, "found '10 20'");
        limit_err(",10", 0, "missing offset");
        limit_err("10,", 3, "missing count");
        limit_err("10, ", 4, "missing count");
        limit_err("18446744073709551616", 0, "out of range");
        limit_err("10; DROP TABLE x", 0, "found '10; DROP TABLE x'");
    }

    // ----- ListQuery -----

    #[test]
    fn list_query_combines_all_three() {
        let q = ListQuery::parse(Some("id GT 1"), Some("id desc"), Some("5,10")).unwrap();
        assert_eq!(
            q,
            ListQuery {
                filter: Some(cmp("id", CmpOp::Gt, Value::Int(1))),
                order: vec![ob("id", true)],
                limit: Some(Limit { offset: 5, count: 10 }),
            }
        );
    }

    #[test]
    fn list_query_absent_or_blank_params_are_ignored() {
        assert_eq!(ListQuery::parse(None, None, None).unwrap(), ListQuery::default());
        assert_eq!(ListQuery::parse(Some(""), Some(" "), Some("")).unwrap(), ListQuery::default());
    }

    #[test]
    fn list_query_reports_the_failing_param() {
        let err = ListQuery::parse(Some("id EQ 1"), Some("id up"), None).unwrap_err();
        assert_eq!(err.param, "orderby");
        assert_eq!(err.position, 3);
        let err = ListQuery::parse(None, None, Some("ten")).unwrap_err();
        assert_eq!(err.param, "limit");
        let err = ListQuery::parse(Some("id EQ"), Some("id"), Some("1")).unwrap_err();
        assert_eq!(err.param, "where");
        assert_eq!(err.to_string(), "where: missing value after 'EQ' at position 5");
    }
}
