//! Output formats for records and reports: table, jsonl, json, yaml, csv.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use crate::RecordView;
use crate::chain::FIELD_ORDER;
use clap::ValueEnum;
use serde_json::Value;

use super::Context;

/// `--output` formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The stored lines, byte for byte.
    Jsonl,
    /// One JSON array (or object).
    Json,
    /// YAML.
    Yaml,
    /// CSV with a header row; nested values as JSON text.
    Csv,
}

impl Format {
    /// The chosen format, else `table` on a terminal and `jsonl` otherwise.
    pub fn or_default(chosen: Option<Format>, ctx: &Context) -> Format {
        chosen.unwrap_or(if ctx.stdout_tty {
            Format::Table
        } else {
            Format::Jsonl
        })
    }
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Paints `s` when colour is on.
pub fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("{code}{s}{RESET}")
    } else {
        s.to_owned()
    }
}

/// Escapes control, bidirectional and invisible formatting characters, which log content
/// (attacker influenced) could use to forge, reorder or hide text on a terminal: C0 and C1
/// controls and DEL, the bidi marks, embeddings, overrides and isolates, the line and
/// paragraph separators, zero-width and other invisible format characters, the BOM, the
/// interlinear annotation characters and the Unicode tag characters. Each becomes `\u{…}`.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    let bad = |c: char| {
        c.is_control()
            || matches!(c,
                '\u{00AD}' | '\u{061C}' | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}')
    };
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Table rows held before they are printed: the widths of a page's columns are known when it
/// is printed, and memory stays bounded however many records a query returns.
const TABLE_PAGE: usize = 1000;

/// Streams records in one format.
pub struct RecordWriter<W: Write> {
    format: Format,
    sink: Sink<W>,
    color: bool,
    count: u64,
    rows: Vec<[String; 6]>,
    /// Column widths so far: a later page's columns are at least as wide as an earlier one's.
    widths: [usize; 6],
    header: bool,
}

/// Why a record was left out of csv or yaml output.
pub const UNDECODABLE: &str = "csv and yaml cannot hold it: a value in it cannot be decoded (a lone surrogate escape, a number beyond 64-bit floating point, or nesting deeper than 128)";

enum Sink<W: Write> {
    Plain(W),
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> RecordWriter<W> {
    pub fn new(format: Format, mut out: W, color: bool) -> io::Result<Self> {
        let sink = match format {
            Format::Csv => {
                let mut csv = csv::Writer::from_writer(out);
                let mut header: Vec<&str> = FIELD_ORDER.to_vec();
                header.push("extra");
                csv.write_record(&header).map_err(csv_io)?;
                Sink::Csv(Box::new(csv))
            }
            Format::Json => {
                out.write_all(b"[")?;
                Sink::Plain(out)
            }
            _ => Sink::Plain(out),
        };
        Ok(RecordWriter {
            format,
            sink,
            color,
            count: 0,
            rows: Vec::new(),
            widths: TABLE_HEAD.map(|h| h.chars().count()),
            header: true,
        })
    }

    /// Leaves out the table's header row (for `tail --follow`, after the first batch).
    pub fn headerless(&mut self) {
        self.header = false;
    }

    /// Writes one record: `line` is the stored line (a record by
    /// [`crate::reader::read_record`]), `view` its parsed fields. `Ok(Err(why))`: the
    /// format cannot hold this record, and nothing of it was written.
    pub fn record(
        &mut self,
        line: &[u8],
        view: &RecordView<'_>,
    ) -> io::Result<Result<(), &'static str>> {
        // NOTE: csv and yaml decode every value; a line the validator accepts but serde_json
        // cannot decode is left out whole, before any byte of it is written.
        let value = match self.format {
            Format::Csv | Format::Yaml => match serde_json::from_slice::<Value>(line) {
                Ok(value @ Value::Object(_)) => Some(value),
                _ => return Ok(Err(UNDECODABLE)),
            },
            _ => None,
        };
        self.count += 1;
        self.write_record(line, view, value).map(Ok)
    }

    fn write_record(
        &mut self,
        line: &[u8],
        view: &RecordView<'_>,
        value: Option<Value>,
    ) -> io::Result<()> {
        match (&mut self.sink, self.format) {
            (Sink::Csv(csv), _) => {
                let Some(Value::Object(mut map)) = value else {
                    return Ok(());
                };
                let mut row: Vec<String> = FIELD_ORDER
                    .iter()
                    .map(|f| {
                        map.shift_remove(*f)
                            .map_or_else(String::new, |v| csv_cell(&v))
                    })
                    .collect();
                row.push(if map.is_empty() {
                    String::new()
                } else {
                    Value::Object(map).to_string()
                });
                csv.write_record(&row).map_err(csv_io)
            }
            (Sink::Plain(out), Format::Json) => {
                out.write_all(if self.count == 1 { b"\n" } else { b",\n" })?;
                out.write_all(line)
            }
            (Sink::Plain(out), Format::Yaml) => {
                let Some(value) = value else {
                    return Ok(());
                };
                let mut s = String::new();
                yaml_item(&mut s, &value, 0);
                out.write_all(s.as_bytes())
            }
            (Sink::Plain(out), Format::Table) => {
                self.rows.push(table_row(view));
                if self.rows.len() >= TABLE_PAGE {
                    let page = render_table(&self.rows, self.color, self.header, &mut self.widths);
                    out.write_all(page.as_bytes())?;
                    self.rows.clear();
                    self.header = false;
                }
                Ok(())
            }
            (Sink::Plain(out), _) => {
                out.write_all(line)?;
                out.write_all(b"\n")
            }
        }
    }

    /// Ends the output (closes the JSON array, prints the table) and flushes.
    pub fn finish(self) -> io::Result<W> {
        let mut out = match self.sink {
            Sink::Csv(csv) => csv.into_inner().map_err(csv::IntoInnerError::into_error)?,
            Sink::Plain(out) => out,
        };
        match self.format {
            Format::Json => out.write_all(if self.count == 0 { b"]\n" } else { b"\n]\n" })?,
            Format::Yaml if self.count == 0 => out.write_all(b"[]\n")?,
            Format::Table if self.header || !self.rows.is_empty() => {
                let mut widths = self.widths;
                out.write_all(
                    render_table(&self.rows, self.color, self.header, &mut widths).as_bytes(),
                )?;
            }
            _ => {}
        }
        out.flush()?;
        Ok(out)
    }
}

/// The I/O error inside a CSV error, kept as it is so that a closed pipe still reads as one.
pub fn csv_io(e: csv::Error) -> io::Error {
    if !e.is_io_error() {
        return io::Error::other(e);
    }
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io,
        other => io::Error::other(format!("{other:?}")),
    }
}

fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => v.to_string(),
    }
}

fn table_row(r: &RecordView<'_>) -> [String; 6] {
    let time = r
        .timestamp
        .as_deref()
        .map(|t| sanitize(&t.get(..23).unwrap_or(t).replacen('T', " ", 1)).into_owned())
        .unwrap_or_default();
    let text = |c: &Option<Cow<'_, str>>| sanitize(c.as_deref().unwrap_or("")).into_owned();
    let mut resource = sanitize(&r.display_resource()).into_owned();
    if resource.chars().count() > 60 {
        resource = resource.chars().take(59).collect::<String>() + "…";
    }
    [
        time,
        text(&r.user_id),
        text(&r.action),
        resource,
        text(&r.status),
        r.latency().map(|l| format!("{l} ms")).unwrap_or_default(),
    ]
}

const TABLE_HEAD: [&str; 6] = ["TIME", "USER", "ACTION", "RESOURCE", "STATUS", "LATENCY"];

/// Renders a page of rows; `widths` are widened to fit them and kept for the next page.
fn render_table(
    rows: &[[String; 6]],
    color: bool,
    header: bool,
    widths: &mut [usize; 6],
) -> String {
    const HEAD: [&str; 6] = TABLE_HEAD;
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let widths = *widths;
    let mut out = String::new();
    let line = |out: &mut String, cells: [&str; 6], status_color: Option<&str>, head: bool| {
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            let padded = if i == 5 {
                format!("{}{cell}", " ".repeat(pad))
            } else if i == 5 - 1 || i < 5 {
                format!("{cell}{}", " ".repeat(pad))
            } else {
                (*cell).to_owned()
            };
            let painted = match (head, i, status_color) {
                (true, _, _) => paint(color, BOLD, &padded),
                (false, 4, Some(c)) => paint(color, c, &padded),
                (false, 0, _) => paint(color, DIM, &padded),
                _ => padded,
            };
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(&painted);
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    };
    if header {
        line(&mut out, HEAD, None, true);
    }
    for row in rows {
        let status = match row[4].as_str() {
            "success" => Some(GREEN),
            "error" | "failure" | "failed" => Some(RED),
            _ => None,
        };
        let cells = [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]].map(String::as_str);
        line(&mut out, cells, status, false);
    }
    out
}

/// Writes `value` as YAML: block style, every string double-quoted (JSON escapes are valid YAML).
pub fn to_yaml(value: &Value) -> String {
    let mut s = String::new();
    match value {
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                yaml_item(&mut s, item, 0);
            }
        }
        Value::Object(map) if !map.is_empty() => yaml_map(&mut s, map, 0),
        other => {
            s.push_str(&yaml_scalar(other));
            s.push('\n');
        }
    }
    s
}

fn yaml_item(out: &mut String, v: &Value, indent: usize) {
    out.push_str(&" ".repeat(indent));
    out.push('-');
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml_map(out, m, indent + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            for item in a {
                yaml_item(out, item, indent + 2);
            }
        }
        scalar => {
            out.push(' ');
            out.push_str(&yaml_scalar(scalar));
            out.push('\n');
        }
    }
}

fn yaml_map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    for (k, v) in m {
        out.push_str(&" ".repeat(indent));
        out.push_str(&yaml_key(k));
        out.push(':');
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                yaml_map(out, inner, indent + 2);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                for item in a {
                    yaml_item(out, item, indent + 2);
                }
            }
            scalar => {
                out.push(' ');
                out.push_str(&yaml_scalar(scalar));
                out.push('\n');
            }
        }
    }
}

fn yaml_key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain { k.to_owned() } else { yaml_string(k) }
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => yaml_string(s),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

fn yaml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes one serialisable report (stats, verify) as json, jsonl or yaml.
pub fn write_value(out: &mut impl Write, format: Format, value: &Value) -> io::Result<()> {
    match format {
        Format::Jsonl => {
            serde_json::to_writer(&mut *out, value)?;
            out.write_all(b"\n")
        }
        Format::Yaml => out.write_all(to_yaml(value).as_bytes()),
        _ => {
            serde_json::to_writer_pretty(&mut *out, value)?;
            out.write_all(b"\n")
        }
    }
}
