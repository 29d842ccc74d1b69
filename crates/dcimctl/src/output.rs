//! Output: `table` (aligned columns), `wide` (a table with more columns), `json` (the
//! API's own objects, unchanged), `yaml` (the same objects as YAML), `value` (the chosen
//! columns' values, tab-separated, no header) and `ids` (one id per line, for `xargs`).
//!
//! Tables use comfy-table. On a terminal (or with `COLUMNS` set) a table fits the width:
//! cells that do not fit are cut with `…`, each row stays one line. Headers are bold on a
//! terminal only: anstream drops the styling when standard output is a pipe or a file, or
//! when `NO_COLOR` is set.

use std::io::IsTerminal;

use anstyle::Style;
use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Row, Table};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Wide,
    Json,
    Yaml,
    Value,
    Ids,
}

/// In a list of columns, those after this marker show only with `-o wide`.
pub const WIDE: Column = ("", "");

/// How objects are shown: their columns by default, or those asked with `-c`.
pub struct View<'a> {
    pub format: Format,
    pub columns: &'a [String],
    pub no_headers: bool,
}

/// A column: its header and the dotted path of its value (`owner.email`).
pub type Column = (&'static str, &'static str);

/// The text of a value in a table: strings as they are, `null` empty.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn lookup<'v>(v: &'v Value, path: &str) -> &'v Value {
    path.split('.').fold(v, |v, k| &v[k])
}

impl View<'_> {
    fn chosen(&self, defaults: &[Column]) -> Vec<(String, String)> {
        let marker = defaults.iter().position(|c| *c == WIDE).unwrap_or(defaults.len());
        if self.columns.is_empty() {
            let shown: Vec<&Column> = if self.format == Format::Wide {
                defaults.iter().filter(|c| **c != WIDE).collect()
            } else {
                defaults[..marker].iter().collect()
            };
            return shown.into_iter().map(|(h, p)| (h.to_string(), p.to_string())).collect();
        }
        self.columns
            .iter()
            .map(|c| {
                let known = defaults.iter().find(|(h, p)| !h.is_empty() && (h.eq_ignore_ascii_case(c) || *p == c));
                match known {
                    Some((h, p)) => (h.to_string(), p.to_string()),
                    None => (c.to_uppercase(), c.clone()),
                }
            })
            .collect()
    }

    /// Prints a list answer (`{"list": [...], "size": N}`) or a list of objects.
    pub fn list(&self, answer: &Value, defaults: &[Column]) {
        let items: &[Value] = answer.get("list").and_then(Value::as_array).or(answer.as_array()).map_or(&[], |v| v);
        match self.format {
            Format::Json | Format::Yaml => out!("{}", self.format.raw(answer)),
            Format::Ids => items.iter().for_each(|i| out!("{}", text(&i["id"]))),
            Format::Value => {
                let cols = self.chosen(defaults);
                for i in items {
                    out!("{}", cols.iter().map(|(_, p)| text(lookup(i, p))).collect::<Vec<_>>().join("\t"));
                }
            }
            Format::Table | Format::Wide => {
                let cols = self.chosen(defaults);
                let header = (!self.no_headers).then(|| cols.iter().map(|(h, _)| h.clone()).collect());
                let rows = items.iter().map(|i| cols.iter().map(|(_, p)| text(lookup(i, p))).collect());
                print_table(header, rows);
            }
        }
    }

    /// Prints one object: as a two-column table of its fields, or as the API gave it.
    pub fn object(&self, v: &Value, defaults: &[Column]) {
        match self.format {
            Format::Json | Format::Yaml => out!("{}", self.format.raw(v)),
            Format::Ids => out!("{}", text(&v["id"])),
            Format::Value => {
                let cols = self.chosen(defaults);
                out!("{}", cols.iter().map(|(_, p)| text(lookup(v, p))).collect::<Vec<_>>().join("\t"));
            }
            Format::Table | Format::Wide => {
                let header = (!self.no_headers).then(|| vec!["FIELD".to_owned(), "VALUE".to_owned()]);
                let rows = self.chosen(defaults).into_iter().map(|(h, p)| vec![h, text(lookup(v, &p))]);
                print_table(header, rows);
            }
        }
    }
}

/// The width a table must fit: `COLUMNS`, else the terminal's; none for a pipe or file.
fn width() -> Option<u16> {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<u16>().ok()) {
        return Some(n);
    }
    let out = std::io::stdout();
    if !out.is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(&out).map(|(w, _)| w.0)
}

fn print_table(header: Option<Vec<String>>, rows: impl Iterator<Item = Vec<String>>) {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    let fit = width();
    match fit {
        Some(w) => {
            t.set_content_arrangement(ContentArrangement::Dynamic).set_width(w).set_truncation_indicator("…");
        }
        None => {
            t.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    let one_line = |cells: Vec<String>| {
        let mut r = Row::from(cells);
        r.max_height(1);
        r
    };
    let headed = header.is_some();
    if let Some(h) = header {
        t.set_header(one_line(h));
    }
    for r in rows {
        t.add_row(one_line(r));
    }
    // Two spaces between columns, none before the first.
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    let bold = Style::new().bold();
    for (n, line) in t.to_string().lines().enumerate() {
        // comfy-table pads every cell, the last one too.
        let line = line.trim_end();
        if n == 0 && headed {
            write_line(&mut anstream::stdout(), format_args!("{bold}{line}{bold:#}"));
        } else {
            out!("{line}");
        }
    }
}

impl Format {
    /// An answer shown as it is: YAML with `-o yaml`, else pretty JSON.
    pub fn raw(self, v: &Value) -> String {
        match self {
            Format::Yaml => yaml(v).trim_end().to_owned(),
            _ => pretty(v),
        }
    }
}

/// Writes a line of output (the `out!` macro's): a reader that went away (`dcimctl
/// server list | head`) ends dcimctl quietly, as a pipe's writer should, where
/// `println!` would panic.
pub fn write_line(w: &mut impl std::io::Write, line: std::fmt::Arguments<'_>) {
    if let Err(e) = writeln!(w, "{line}") {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("dcimctl: writing the output: {e}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn yaml(v: &Value) -> String {
    yaml_serde::to_string(v).unwrap_or_default()
}
