//! Output: `table` (aligned columns), `json` (the API's own objects, unchanged),
//! `value` (the chosen columns' values, tab-separated, no header) and `ids` (one id per
//! line, for `xargs`). Tables use comfy-table.

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Value,
    Ids,
}

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
        if self.columns.is_empty() {
            return defaults.iter().map(|(h, p)| (h.to_string(), p.to_string())).collect();
        }
        self.columns
            .iter()
            .map(|c| {
                let known = defaults.iter().find(|(h, p)| h.eq_ignore_ascii_case(c) || *p == c);
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
            Format::Json => println!("{}", pretty(answer)),
            Format::Ids => items.iter().for_each(|i| println!("{}", text(&i["id"]))),
            Format::Value => {
                let cols = self.chosen(defaults);
                for i in items {
                    println!("{}", cols.iter().map(|(_, p)| text(lookup(i, p))).collect::<Vec<_>>().join("\t"));
                }
            }
            Format::Table => {
                let cols = self.chosen(defaults);
                let mut t = Table::new();
                t.load_preset(NOTHING).set_content_arrangement(ContentArrangement::Disabled);
                if !self.no_headers {
                    t.set_header(cols.iter().map(|(h, _)| h.clone()));
                }
                for i in items {
                    t.add_row(cols.iter().map(|(_, p)| text(lookup(i, p))));
                }
                print_table(&mut t);
            }
        }
    }

    /// Prints one object: as a two-column table of its fields, or as the API gave it.
    pub fn object(&self, v: &Value, defaults: &[Column]) {
        match self.format {
            Format::Json => println!("{}", pretty(v)),
            Format::Ids => println!("{}", text(&v["id"])),
            Format::Value => {
                let cols = self.chosen(defaults);
                println!("{}", cols.iter().map(|(_, p)| text(lookup(v, p))).collect::<Vec<_>>().join("\t"));
            }
            Format::Table => {
                let mut t = Table::new();
                t.load_preset(NOTHING).set_content_arrangement(ContentArrangement::Disabled);
                if !self.no_headers {
                    t.set_header(["FIELD", "VALUE"]);
                }
                for (h, p) in self.chosen(defaults) {
                    t.add_row([h, text(lookup(v, &p))]);
                }
                print_table(&mut t);
            }
        }
    }
}

fn print_table(t: &mut Table) {
    // Two spaces between columns, none before the first.
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    for line in t.to_string().lines() {
        // comfy-table pads every cell, the last one too.
        println!("{}", line.trim_end());
    }
}

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}
