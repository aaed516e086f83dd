//! The configuration file (TOML): the log, durability, taxonomy, redaction, and the settings
//! of `append`, `proxy`, `serve`, `ship`, rotation and retention.
//!
//! ```toml
//! file = "/var/log/nexus-audit/audit.jsonl"
//! durability = "sync"
//!
//! [taxonomy]
//! shards = { "ad_" = "identity" }
//! categories = { "workday_update_" = "WRITE" }
//!
//! [redaction]
//! keys = ["badge_pin"]
//! ```
//!
//! Every key is optional; an unknown key, a value of the wrong type or shape, and a key that
//! would hold a secret inline (`*_token`, `*_password`, `*_secret`, a `*_key` that is not a
//! path) are refused with a [`ConfigError`] naming the file, line, column and key. Secrets are
//! given only as a file path (`token_file`) or an environment variable's name (`token_env`).
//!
//! The file sets defaults: a command-line flag or an environment variable overrides it (the
//! CLI decides that), and the built-in defaults fill what it leaves out.

mod values;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use toml::de::{DeTable, DeValue};

use crate::redact::{RedactionRules, Redactor};
use crate::taxonomy::Taxonomy;

pub use values::{
    ByteSize, Category, Compress, DurabilitySetting, EnvName, Header, KeyWord, Pattern, Span, Text,
};

/// A configuration file, checked: every key optional; unknown keys, bad values and secrets
/// written inline refused ([`Config::parse`], [`Loaded::read`]). README's Configuration section
/// shows every key.
///
/// ```
/// let config = nexus_audit::Config::parse(
///     "[taxonomy]\nshards = { \"acme_\" = \"acme\" }\n[redaction]\nkeys = [\"badge_pin\"]\n",
///     "config.toml",
/// )?;
/// assert_eq!(config.taxonomy().shard_for("acme_get_badge"), "acme");
/// assert_eq!(config.redaction_rules().extra_keys, ["badge_pin"]);
/// # Ok::<(), nexus_audit::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The log file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// When an append is durable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<DurabilitySetting>,
    /// Shard and category tables.
    #[serde(default)]
    pub taxonomy: TaxonomySection,
    /// Extra redaction rules.
    #[serde(default)]
    pub redaction: RedactionSection,
    /// Rotation defaults (`append --max-size/--max-age/--compress`, `rotate`).
    #[serde(default)]
    pub rotation: RotationSection,
    /// Retention defaults (`prune --older-than/--archive`).
    #[serde(default)]
    pub retention: RetentionSection,
    /// `proxy` settings.
    #[serde(default)]
    pub proxy: ProxySection,
    /// `serve` settings.
    #[serde(default)]
    pub serve: ServeSection,
    /// `ship` settings.
    #[serde(default)]
    pub ship: ShipSection,
}

/// `[taxonomy]`: tool name prefix → shard, prefix (or whole tool name) → category.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaxonomySection {
    /// Tool name prefix → shard. The longest matching prefix wins, before the built-in table.
    #[serde(default)]
    pub shards: BTreeMap<String, Text>,
    /// Tool name prefix, or a whole tool name → category. A key ending in `*` or in a
    /// separator (`_`, `-`, `.`, `/`) is a prefix (`"workday_update_"`, `"acme*"`); any other
    /// key is a whole tool name (`"helix_close_ticket"`), which wins over every prefix. Among
    /// prefixes the longest match wins.
    #[serde(default)]
    pub categories: BTreeMap<String, Category>,
    /// Shard of a tool that matches no prefix [default: `unknown`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_shard: Option<Text>,
    /// Category of a tool that matches no prefix [default: `READ`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_category: Option<Category>,
    /// Keep the built-in tables after the configured ones [default: true].
    #[serde(default = "yes")]
    pub builtin: bool,
}

impl Default for TaxonomySection {
    fn default() -> Self {
        TaxonomySection {
            shards: BTreeMap::new(),
            categories: BTreeMap::new(),
            default_shard: None,
            default_category: None,
            builtin: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// `[redaction]`: rules added to the built-in ones (SPEC §5).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionSection {
    /// Extra sensitive key words.
    #[serde(default)]
    pub keys: Vec<KeyWord>,
    /// Extra value patterns (regex syntax).
    #[serde(default)]
    pub patterns: Vec<Pattern>,
    /// Key names never redacted by name.
    #[serde(default)]
    pub allow: Vec<Text>,
}

/// `[rotation]`: when the active file is rotated and how the rotated files are kept.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RotationSection {
    /// Rotate once the active file is this large.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<ByteSize>,
    /// Rotate once the active file's first record is this old.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Span>,
    /// How rotated files are compressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compress: Option<Compress>,
}

/// `[retention]`: which rotated files `prune` removes, and where it archives them first.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// Prune rotated files older than this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub older_than: Option<Span>,
    /// Move pruned files into this directory instead of deleting them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<PathBuf>,
}

/// `[proxy]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySection {
    /// `server_id` of the records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<Text>,
    /// `user_id` of the records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Text>,
    /// Refuse calls that cannot be recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_closed: Option<bool>,
    /// Record each answer's SHA-256 and size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_results: Option<bool>,
}

/// `[serve]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// Address and port to listen on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<Text>,
    /// A file holding the bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Exports allowed per client address: `N/min` (or `N/s`, `N/h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_rate: Option<Text>,
}

/// `[ship]`: where records are shipped, and the secrets for it, by file or variable name.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShipSection {
    /// The destination (`ship --to`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Text>,
    /// The cursor file: how far shipping got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<PathBuf>,
    /// Records per request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<std::num::NonZeroU64>,
    /// A file holding the HEC token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The environment variable holding the HEC token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<EnvName>,
    /// A file holding the webhook's signing secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// The environment variable holding the webhook's signing secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<EnvName>,
    /// Extra HTTP headers, `Name: value` (no credentials).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header: Vec<Header>,
}

/// A configuration file that cannot be used: one sentence naming the file and, when the
/// problem is in its text, the line, column and key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.sentence())]
pub struct ConfigError {
    /// The file, as named to the loader (`-` for standard input).
    pub file: String,
    /// 1-based line and column of the problem.
    pub at: Option<(usize, usize)>,
    /// The dotted key (`ship.batch`), when the problem belongs to one.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn sentence(&self) -> String {
        let mut s = format!("the configuration {}", self.file);
        if let Some((line, column)) = self.at {
            let _ = write!(s, " line {line}, column {column}");
        }
        if let Some(key) = &self.key {
            let _ = write!(s, ", key {key}");
        }
        s.push_str(": ");
        s.push_str(&self.message);
        s
    }
}

/// A configuration together with where it came from and its hash.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Where it was read: the file's full path, or `-`.
    pub source: String,
}

impl Loaded {
    /// Reads and checks the file at `path`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the file cannot be read or is not a valid configuration.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: source.clone(),
            at: None,
            key: None,
            message: match e.kind() {
                std::io::ErrorKind::NotFound => "the file does not exist".to_owned(),
                _ => format!("cannot read the file ({e})"),
            },
        })?;
        let config = Config::parse(&text, &source)?;
        // The record names the file by its full path, whatever directory the writer ran in.
        let source = std::fs::canonicalize(path).map_or(source, |p| p.display().to_string());
        Ok(Loaded { config, source })
    }
}

impl Config {
    /// Parses and checks a configuration's text; `file` names it in errors.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for invalid TOML, an unknown key, a bad value, or a secret inline.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let error =
            |span: Option<Range<usize>>, key: Option<String>, message: String| ConfigError {
                file: file.to_owned(),
                at: span.map(|s| line_column(text, s.start)),
                key,
                message,
            };
        let table =
            DeTable::parse(text).map_err(|e| error(e.span(), None, without_values(e.message())))?;
        if let Some((key, span)) = inline_secret(table.get_ref(), "") {
            return Err(error(
                Some(span),
                Some(key.clone()),
                format!(
                    "it would hold a secret inline; give a file path ({}) or an environment \
                     variable's name ({}) instead",
                    replacement(&key, "_file"),
                    replacement(&key, "_env")
                ),
            ));
        }
        let config: Config = toml::from_str(text).map_err(|e| {
            let key = e.span().and_then(|s| key_at(table.get_ref(), s.start, ""));
            error(e.span(), key, without_values(e.message()))
        })?;
        if let Err(e) = Redactor::new(&config.redaction_rules()) {
            return Err(error(
                span_of(table.get_ref(), &["redaction"]),
                Some("redaction".to_owned()),
                e.to_string(),
            ));
        }
        let ship = &config.ship;
        for (both, file_key, env_key) in [
            (
                ship.token_file.is_some() && ship.token_env.is_some(),
                "token_file",
                "token_env",
            ),
            (
                ship.secret_file.is_some() && ship.secret_env.is_some(),
                "secret_file",
                "secret_env",
            ),
        ] {
            if both {
                return Err(error(
                    span_of(table.get_ref(), &["ship", env_key]),
                    Some(format!("ship.{env_key}")),
                    format!("give the secret one way: {file_key} or {env_key}, not both"),
                ));
            }
        }
        if let Some(rate) = &config.serve.export_rate
            && !is_rate(&rate.0)
        {
            return Err(error(
                span_of(table.get_ref(), &["serve", "export_rate"]),
                Some("serve.export_rate".to_owned()),
                "is not a rate: write N/min (or N/s, N/h), such as 6/min".to_owned(),
            ));
        }
        Ok(config)
    }

    /// The shard and category tables: the configured prefixes, longest first, then (unless
    /// `builtin = false`) the built-in ones.
    #[must_use]
    pub fn taxonomy(&self) -> Taxonomy {
        let t = &self.taxonomy;
        let mut out = Taxonomy::default();
        if !t.builtin {
            out.shards.clear();
            out.categories.clear();
        }
        let mut shards: Vec<(String, String)> = t
            .shards
            .iter()
            .map(|(p, s)| (p.clone(), s.0.clone()))
            .collect();
        let (prefixes, names): (Vec<_>, Vec<_>) =
            t.categories.iter().partition(|(key, _)| is_prefix(key));
        let mut categories: Vec<(String, String)> = prefixes
            .into_iter()
            .map(|(p, c)| (p.trim_end_matches('*').to_owned(), c.as_str().to_owned()))
            .collect();
        out.tool_categories = names
            .into_iter()
            .map(|(name, c)| (name.clone(), c.as_str().to_owned()))
            .collect();
        for table in [&mut shards, &mut categories] {
            table.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        }
        out.shards.splice(0..0, shards);
        out.categories.splice(0..0, categories);
        if let Some(shard) = &t.default_shard {
            out.default_shard.clone_from(&shard.0);
        }
        if let Some(category) = t.default_category {
            category.as_str().clone_into(&mut out.default_category);
        }
        out
    }

    /// The redaction rules added to the built-in ones.
    #[must_use]
    pub fn redaction_rules(&self) -> RedactionRules {
        let r = &self.redaction;
        RedactionRules {
            extra_keys: r.keys.iter().map(|k| k.0.clone()).collect(),
            extra_patterns: r.patterns.iter().map(|p| p.0.clone()).collect(),
            allow_keys: r.allow.iter().map(|a| a.0.clone()).collect(),
        }
    }

    /// SHA-256 (hex) of the configuration's canonical form: its JSON with the keys in the
    /// schema's order, tables sorted by key, unset keys left out. The file holds no secrets
    /// (only their paths and variable names), so none enter the hash.
    #[must_use]
    pub fn sha256(&self) -> String {
        // NOTE: serialising these plain structs cannot fail.
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&canonical))
    }

    /// The configuration as TOML, as `config check` prints it.
    ///
    /// # Errors
    ///
    /// Only if TOML cannot hold a value (it always can for a parsed configuration).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError {
            file: "-".to_owned(),
            at: None,
            key: None,
            message: e.to_string(),
        })
    }
}

/// True for a `[taxonomy] categories` key that is a prefix rather than a whole tool name.
fn is_prefix(key: &str) -> bool {
    key.is_empty() || key.ends_with(['*', '_', '-', '.', '/'])
}

/// `N/s`, `N/min` or `N/h` with N at least 1.
fn is_rate(s: &str) -> bool {
    s.trim().split_once('/').is_some_and(|(n, unit)| {
        n.trim().parse::<u32>().is_ok_and(|n| n > 0)
            && matches!(
                unit.trim(),
                "s" | "sec" | "second" | "m" | "min" | "minute" | "h" | "hour"
            )
    })
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = memchr::memchr_iter(b'\n', before).count() + 1;
    let start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

/// The parser's message with every quoted string replaced, so a secret written by mistake
/// where another value belongs never reaches an error.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        if c == '"' {
            let mut escaped = false;
            for c in chars.by_ref() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    _ => escaped = false,
                }
            }
            out.push_str("\"…\"");
        } else if c == '\n' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

/// True for a key whose name says it holds a secret: its last word (split at `_`, `-`) is
/// token, password, passwd, secret, apikey or key.
fn names_secret(key: &str) -> bool {
    let last = key
        .rsplit(['_', '-'])
        .next()
        .unwrap_or(key)
        .to_ascii_lowercase();
    matches!(
        last.as_str(),
        "token" | "password" | "passwd" | "secret" | "apikey" | "key"
    )
}

/// The first key (dotted) that would hold a secret inline, and where. A `*_key` whose value is
/// a path (it has a `/`) is not a secret: it names the file that holds one. `[taxonomy]`'s keys
/// are tool names (`api_token_` may be a prefix), so it is not searched.
fn inline_secret(table: &DeTable<'_>, prefix: &str) -> Option<(String, Range<usize>)> {
    for (key, value) in table {
        let name = format!("{prefix}{}", key.get_ref());
        match value.get_ref() {
            DeValue::Table(_) if name == "taxonomy" => {}
            DeValue::Table(inner) => {
                if let Some(found) = inline_secret(inner, &format!("{name}.")) {
                    return Some(found);
                }
            }
            other if names_secret(key.get_ref()) => {
                let is_key = key.get_ref().to_ascii_lowercase().ends_with("key");
                let is_path = other.as_str().is_some_and(|s| s.contains('/'));
                if !(is_key && is_path) {
                    return Some((name, key.span()));
                }
            }
            _ => {}
        }
    }
    None
}

/// `token_file` for `ship.token`, `hec_token_file` for `ship.hec_token`.
fn replacement(key: &str, suffix: &str) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    format!("{last}{suffix}")
}

/// The dotted key whose name or value holds byte `at`: the innermost one.
fn key_at(table: &DeTable<'_>, at: usize, prefix: &str) -> Option<String> {
    for (key, value) in table {
        let name = format!("{prefix}{}", key.get_ref());
        let inside = |s: Range<usize>| s.start <= at && at < s.end.max(s.start + 1);
        if let DeValue::Table(inner) = value.get_ref()
            && let Some(found) = key_at(inner, at, &format!("{name}."))
        {
            return Some(found);
        }
        if inside(key.span()) || inside(value.span()) {
            return Some(name);
        }
    }
    None
}

/// Where the value at `path` is.
fn span_of(table: &DeTable<'_>, path: &[&str]) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    let (key, value) = table.iter().find(|(k, _)| k.get_ref() == first)?;
    match (rest.is_empty(), value.get_ref()) {
        (true, _) => Some(key.span()),
        (false, DeValue::Table(inner)) => span_of(inner, rest),
        _ => Some(value.span()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        Config::parse(text, "c.toml").expect_err("refused")
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let e = err("file = \"a\"\n[proxy]\nserver = \"x\"\n");
        assert_eq!(e.at.map(|a| a.0), Some(3));
        assert_eq!(e.key.as_deref(), Some("proxy.server"));
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_without_the_value() {
        let e = err("[ship]\nbatch = \"hunter2\"\n");
        assert_eq!(e.key.as_deref(), Some("ship.batch"));
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn an_inline_secret_is_refused() {
        let e = err("[ship]\nhec_token = \"abc\"\n");
        assert_eq!(e.key.as_deref(), Some("ship.hec_token"));
        assert!(!e.to_string().contains("abc"), "{e}");
        let e = err("[serve]\ntoken = \"abc\"\n");
        assert_eq!(e.key.as_deref(), Some("serve.token"));
        // Tool names are not secrets.
        assert!(Config::parse("[taxonomy]\nshards = { \"api_token_\" = \"auth\" }\n", "c").is_ok());
    }

    #[test]
    fn configured_prefixes_win_longest_first() -> Result<(), ConfigError> {
        let c = Config::parse(
            "[taxonomy]\nshards = { \"acme_\" = \"acme\" }\ncategories = { \"workday_\" = \"READ\", \"workday_update_\" = \"WRITE\" }\n",
            "c.toml",
        )?;
        let t = c.taxonomy();
        assert_eq!(t.shard_for("acme_get"), "acme");
        assert_eq!(t.shard_for("workday_get"), "workday");
        assert_eq!(t.category_for("workday_update_worker"), "WRITE");
        assert_eq!(t.category_for("workday_get_worker"), "READ");
        Ok(())
    }

    #[test]
    fn a_category_key_without_a_separator_or_star_is_a_whole_tool_name() -> Result<(), ConfigError>
    {
        let c = Config::parse(
            "[taxonomy]\ncategories = { \"helix_close_ticket\" = \"ADMIN\", \"acme*\" = \"WRITE\" }\n",
            "c.toml",
        )?;
        let t = c.taxonomy();
        assert_eq!(t.category_for("helix_close_ticket"), "ADMIN");
        assert_eq!(t.category_for("helix_close_ticket_all"), "READ");
        assert_eq!(t.category_for("acmeget"), "WRITE");
        Ok(())
    }

    #[test]
    fn the_hash_ignores_layout_but_not_rules() -> Result<(), ConfigError> {
        let a = Config::parse("[redaction]\nkeys = [\"badge_pin\"]\n", "a")?;
        let b = Config::parse("# comment\n[redaction]\nkeys = [ \"badge_pin\" ]\n", "b")?;
        let c = Config::parse("[redaction]\nkeys = [\"badge\"]\n", "c")?;
        assert_eq!(a.sha256(), b.sha256());
        assert_ne!(a.sha256(), c.sha256());
        Ok(())
    }
}
