//! The Postgres destination: `postgres://user@host:port/db?table=audit_log`.
//!
//! The table is created when missing: `chain_id`, `seq`, `hash`, `prev_hash`, one column per
//! record field of [`FIELDS`](crate::chain::FIELDS) (text, `jsonb` for objects, `numeric` for
//! counts, `boolean` for flags, `timestamptz` for `timestamp`) and `line`, the stored line
//! exactly. Primary key `(chain_id, seq)`; indexes on `(timestamp, action)` and
//! `(user_id, timestamp)`. A batch is one `INSERT … SELECT … FROM UNNEST(…) ON CONFLICT DO
//! NOTHING`, acknowledged when the statement commits: a batch sent again inserts nothing new.
//!
//! The field columns are for queries; `line` is the record. A field whose value is not of its
//! column's type (an old log's fractional count, a caller's odd timestamp) is NULL in its
//! column and kept, exactly, in `line`.
//!
//! Connections are made without TLS: reach a remote server through a unix socket
//! (`?host=/run/postgresql`), a tunnel, or a private network. The password comes from the URL
//! or from [`DestinationOptions::token`].

use std::fmt::Write as _;
use std::str::FromStr as _;

use postgres::{Client, Config, NoTls};
use serde_json::Value;

use crate::chain::{FIELDS, Kind};
use crate::error::{Error, Result};

use super::{Destination, DestinationOptions, SendError, Shipped, mask_url};

/// The table written when the URL names none.
const DEFAULT_TABLE: &str = "audit_log";

/// A Postgres table as a destination.
pub(crate) struct Postgres {
    config: Config,
    table: Table,
    describe: String,
    client: Option<Client>,
    insert: String,
}

/// A table name, checked: `name` or `schema.name`, each `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Clone, Debug)]
struct Table {
    schema: Option<String>,
    name: String,
}

impl Table {
    fn parse(text: &str) -> Option<Self> {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        match text.split_once('.') {
            Some((schema, name)) if ok(schema) && ok(name) => Some(Table {
                schema: Some(schema.to_owned()),
                name: name.to_owned(),
            }),
            None if ok(text) => Some(Table {
                schema: None,
                name: text.to_owned(),
            }),
            _ => None,
        }
    }

    fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("\"{s}\".\"{}\"", self.name),
            None => format!("\"{}\"", self.name),
        }
    }
}

/// One column of the table besides the chain columns and `line`.
struct Column {
    name: &'static str,
    sql_type: &'static str,
}

fn field_columns() -> Vec<Column> {
    FIELDS
        .iter()
        .filter(|f| f.name != "seq" && f.name != "prev_hash")
        .map(|f| Column {
            name: f.name,
            sql_type: match (f.name, f.kind) {
                ("timestamp", _) => "timestamptz",
                (_, Kind::Json) => "jsonb",
                (_, Kind::Count | Kind::Signed) => "numeric",
                (_, Kind::Flag) => "boolean",
                (_, Kind::Text) => "text",
            },
        })
        .collect()
}

/// Splits `?table=…` off the URL: the `postgres` crate refuses parameters it does not know.
fn split_url(url: &str) -> Result<(String, Table)> {
    let invalid = |why: &str| Error::InvalidConfig(format!("--to {}: {why}", mask_url(url)));
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut table = None;
    let mut rest = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some(("table", t)) => table = Some(t),
            _ if pair.is_empty() => {}
            _ => rest.push(pair),
        }
    }
    let table = Table::parse(table.unwrap_or(DEFAULT_TABLE)).ok_or_else(|| {
        invalid("the table must be a name or schema.name of letters, digits and _")
    })?;
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, table))
}

fn config_of(url: &str, opts: &DestinationOptions) -> Result<(Config, Table)> {
    let (pg_url, table) = split_url(url)?;
    let mut config = Config::from_str(&pg_url).map_err(|e| {
        Error::InvalidConfig(format!(
            "--to {} is not a PostgreSQL URL: {e}",
            mask_url(url)
        ))
    })?;
    if config.get_password().is_none()
        && let Some(password) = &opts.token
    {
        config.password(password);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(opts.timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("nexus-audit ship");
    }
    Ok((config, table))
}

/// Opens the destination; the first connection is made by the first batch, so a server that
/// is down at the start is retried like one that goes down later.
pub(crate) fn open(url: &str, opts: &DestinationOptions) -> Result<Box<dyn Destination>> {
    let (config, table) = config_of(url, opts)?;
    let insert = insert_sql(&table);
    Ok(Box::new(Postgres {
        config,
        table,
        describe: mask_url(url),
        client: None,
        insert,
    }))
}

fn create_sql(table: &Table) -> String {
    let t = table.quoted();
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS {t} (\n  \"chain_id\" text NOT NULL,\n  \"seq\" bigint NOT NULL,\n  \"hash\" text NOT NULL,\n  \"prev_hash\" text NOT NULL,\n"
    );
    for c in field_columns() {
        let _ = writeln!(sql, "  \"{}\" {},", c.name, c.sql_type);
    }
    sql.push_str("  \"line\" text NOT NULL,\n  PRIMARY KEY (\"chain_id\", \"seq\")\n);\n");
    let base = &table.name;
    let _ = write!(
        sql,
        "CREATE INDEX IF NOT EXISTS \"{base}_timestamp_action_idx\" ON {t} (\"timestamp\", \"action\");\n\
         CREATE INDEX IF NOT EXISTS \"{base}_user_id_timestamp_idx\" ON {t} (\"user_id\", \"timestamp\");\n"
    );
    sql
}

fn insert_sql(table: &Table) -> String {
    let columns = field_columns();
    let mut names = vec!["chain_id", "seq", "hash", "prev_hash"];
    names.extend(columns.iter().map(|c| c.name));
    names.push("line");
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let mut select = vec![
        "c1".to_owned(),
        "c2".to_owned(),
        "c3".to_owned(),
        "c4".to_owned(),
    ];
    let mut arrays = vec![
        "$1::text[]".to_owned(),
        "$2::int8[]".to_owned(),
        "$3::text[]".to_owned(),
        "$4::text[]".to_owned(),
    ];
    for (i, c) in columns.iter().enumerate() {
        let n = i + 5;
        select.push(format!("c{n}::{}", c.sql_type));
        arrays.push(format!("${n}::text[]"));
    }
    let n = columns.len() + 5;
    select.push(format!("c{n}"));
    arrays.push(format!("${n}::text[]"));
    let aliases: Vec<String> = (1..=n).map(|i| format!("c{i}")).collect();
    format!(
        "INSERT INTO {} ({}) SELECT {} FROM UNNEST({}) AS u({}) ON CONFLICT DO NOTHING",
        table.quoted(),
        quoted.join(", "),
        select.join(", "),
        arrays.join(", "),
        aliases.join(", ")
    )
}

/// The value of field `name` of kind `kind` as text for its column, or NULL.
fn column_value(name: &str, kind: Kind, value: Option<&Value>) -> Option<String> {
    let value = value?;
    match (name, kind, value) {
        ("timestamp", _, Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|_| s.clone()),
        (_, Kind::Text, Value::String(s)) => Some(s.replace('\0', "\u{fffd}")),
        (_, Kind::Json, v) if !v.is_null() => Some(without_nul(v.clone()).to_string()),
        (_, Kind::Count | Kind::Signed, Value::Number(n)) => Some(n.to_string()),
        (_, Kind::Flag, Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

/// Postgres's text and jsonb hold no NUL character: replaced by U+FFFD in the columns (the
/// line keeps it, escaped).
fn without_nul(v: Value) -> Value {
    match v {
        Value::String(s) if s.contains('\0') => Value::String(s.replace('\0', "\u{fffd}")),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nul).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (k.replace('\0', "\u{fffd}"), without_nul(v)))
                .collect(),
        ),
        v => v,
    }
}

/// Sorts an error into retry (the server or the network) or stop (the request).
fn classify(e: &postgres::Error) -> SendError {
    let text = one_line(&describe_error(e));
    if let Some(code) = e.code() {
        let code = code.code();
        let transient = ["08", "53", "57", "58", "40"]
            .iter()
            .any(|class| code.starts_with(class))
            || code == "55P03";
        return if transient {
            SendError::Retry {
                reason: format!("{text} (SQLSTATE {code})"),
                after: None,
            }
        } else {
            SendError::Fatal(format!("{text} (SQLSTATE {code})"))
        };
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("invalid configuration")
        || lower.contains("password missing")
        || lower.contains("tls")
    {
        SendError::Fatal(text)
    } else {
        SendError::Retry {
            reason: text,
            after: None,
        }
    }
}

/// The error in one sentence: the server's own message for a database error (the `postgres`
/// crate's display says only "db error" then).
fn describe_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("the server said: {}", db.message()),
        None => e.to_string(),
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Postgres {
    fn client(&mut self) -> std::result::Result<&mut Client, SendError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let mut client = self.config.connect(NoTls).map_err(|e| classify(&e))?;
            // NOTE: the table is created only when missing, so a user granted INSERT alone
            // (no CREATE on the schema, not the table's owner) can ship to an existing table.
            let exists: bool = client
                .query_one(
                    "SELECT to_regclass($1) IS NOT NULL",
                    &[&self.table.quoted()],
                )
                .map_err(|e| classify(&e))?
                .get(0);
            if !exists {
                client
                    .batch_execute(&create_sql(&self.table))
                    .map_err(|e| classify(&e))?;
            }
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| SendError::Fatal("no connection".to_owned()))
    }
}

impl Destination for Postgres {
    fn send(&mut self, batch: &[Shipped]) -> std::result::Result<(), SendError> {
        let columns = field_columns();
        let mut chain_ids = Vec::with_capacity(batch.len());
        let mut seqs = Vec::with_capacity(batch.len());
        let mut hashes = Vec::with_capacity(batch.len());
        let mut prevs = Vec::with_capacity(batch.len());
        let mut lines = Vec::with_capacity(batch.len());
        let mut fields: Vec<Vec<Option<String>>> = columns
            .iter()
            .map(|_| Vec::with_capacity(batch.len()))
            .collect();
        for r in batch {
            let seq = i64::try_from(r.seq).map_err(|_| {
                SendError::Fatal(format!("seq {} does not fit PostgreSQL's bigint", r.seq))
            })?;
            let record: serde_json::Map<String, Value> = serde_json::from_str(&r.line)
                .map_err(|e| SendError::Fatal(format!("record seq {}: {e}", r.seq)))?;
            for ((c, out), f) in columns.iter().zip(&mut fields).zip(
                FIELDS
                    .iter()
                    .filter(|f| f.name != "seq" && f.name != "prev_hash"),
            ) {
                out.push(column_value(c.name, f.kind, record.get(c.name)));
            }
            chain_ids.push(Some(r.chain_id.clone()));
            seqs.push(seq);
            hashes.push(Some(r.hash.clone()));
            prevs.push(Some(r.prev_hash.clone()));
            lines.push(Some(r.line.clone()));
        }
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            vec![&chain_ids, &seqs, &hashes, &prevs];
        for f in &fields {
            params.push(f);
        }
        params.push(&lines);
        let insert = self.insert.clone();
        let client = self.client()?;
        match client.execute(insert.as_str(), &params) {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = classify(&e);
                if matches!(err, SendError::Retry { .. }) {
                    self.client = None;
                }
                Err(err)
            }
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// One row read back: `(seq, hash, prev_hash, line)`.
pub(crate) struct Row {
    pub seq: i64,
    pub hash: String,
    pub prev_hash: String,
    pub line: String,
}

/// Reads the rows of `chain_id` in `seq` order, 10,000 at a time, handing each to `each`.
pub(crate) fn read_rows(
    url: &str,
    opts: &DestinationOptions,
    chain_id: &str,
    each: &mut dyn FnMut(Row),
) -> Result<()> {
    let (config, table) = config_of(url, opts)?;
    let fail = |e: &postgres::Error| {
        Error::Ship(format!(
            "cannot read the copy back from {}: {}",
            mask_url(url),
            one_line(&describe_error(e))
        ))
    };
    let mut client = config.connect(NoTls).map_err(|e| fail(&e))?;
    let mut tx = client.transaction().map_err(|e| fail(&e))?;
    let sql = format!(
        "SELECT \"seq\", \"hash\", \"prev_hash\", \"line\" FROM {} WHERE \"chain_id\" = $1 ORDER BY \"seq\"",
        table.quoted()
    );
    let portal = tx.bind(sql.as_str(), &[&chain_id]).map_err(|e| fail(&e))?;
    loop {
        let rows = tx.query_portal(&portal, 10_000).map_err(|e| fail(&e))?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            each(Row {
                seq: row.try_get(0).map_err(|e| fail(&e))?,
                hash: row.try_get(1).map_err(|e| fail(&e))?,
                prev_hash: row.try_get(2).map_err(|e| fail(&e))?,
                line: row.try_get(3).map_err(|e| fail(&e))?,
            });
        }
    }
    tx.commit().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parameter_is_split_off_and_checked() -> Result<()> {
        let (url, table) = split_url("postgres://u@h/db?table=s.t&host=/tmp/x")?;
        assert_eq!(url, "postgres://u@h/db?host=/tmp/x");
        assert_eq!(table.quoted(), "\"s\".\"t\"");
        let (_, table) = split_url("postgres://u@h/db")?;
        assert_eq!(table.quoted(), "\"audit_log\"");
        assert!(split_url("postgres://u:pw@h/db?table=x;drop").is_err());
        Ok(())
    }

    #[test]
    fn values_of_the_wrong_type_are_null_in_their_column() {
        let v = serde_json::json!(1.5);
        assert_eq!(
            column_value("latency_ms", Kind::Count, Some(&v)).as_deref(),
            Some("1.5")
        );
        let v = serde_json::json!("soon");
        assert_eq!(column_value("timestamp", Kind::Text, Some(&v)), None);
        assert_eq!(column_value("mock_mode", Kind::Flag, Some(&v)), None);
        let v = serde_json::json!({"a\u{0}": "b\u{0}"});
        assert_eq!(
            column_value("details", Kind::Json, Some(&v)).as_deref(),
            Some("{\"a\u{fffd}\":\"b\u{fffd}\"}")
        );
    }
}
