//! The checked values of a configuration file: each type refuses a bad value while the file is
//! read, so the error carries the value's place in the file.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::redact::{RedactionRules, Redactor};

/// When an append is durable: `sync`, `buffered` or `none` (see [`crate::Durability`]).
///
/// `buffered` means [`crate::Durability::Buffered`] for a long-running writer (the proxy) and
/// [`crate::Durability::SyncOnClose`] for one that appends and exits (`append`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DurabilitySetting {
    /// Return after `fdatasync`.
    Sync,
    /// Write in groups; sync once per group.
    Buffered,
    /// Never sync.
    None,
}

/// An action category (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Category {
    /// Reads data.
    Read,
    /// Changes data.
    Write,
    /// Reads the audit trail.
    Audit,
    /// Produces a report.
    Report,
    /// Administers a system.
    Admin,
}

impl Category {
    /// The category as records store it: `READ`, `WRITE`, …
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Read => "READ",
            Category::Write => "WRITE",
            Category::Audit => "AUDIT",
            Category::Report => "REPORT",
            Category::Admin => "ADMIN",
        }
    }
}

/// How rotated files are compressed: `zstd` or `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compress {
    /// Zstandard.
    Zstd,
    /// Not compressed.
    None,
}

/// A span of time written like the command line's: `90s`, `15m`, `1h`, `7d`, `2w`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    text: String,
    duration: Duration,
}

impl Span {
    /// The span.
    #[must_use]
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

impl TryFrom<String> for Span {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let duration = crate::time::parse_span(text.trim())
            .and_then(|d| d.to_std().ok())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                "is not a span of time: use a whole number and s, m, h, d or w (90s, 15m, 7d)"
                    .to_owned()
            })?;
        Ok(Span { text, duration })
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Span::try_from(String::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// A size in bytes: a whole number of bytes, or a string with a unit (`500K`, `100MiB`, `1G`;
/// K, M, G and T are powers of 1024, with or without `iB`/`B`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    fn parse(text: &str) -> Option<u64> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (num, unit) = text.split_at(split);
        let n: u64 = num.parse().ok()?;
        let shift = match unit.trim().to_ascii_uppercase().as_str() {
            "" | "B" => 0,
            "K" | "KB" | "KIB" => 10,
            "M" | "MB" | "MIB" => 20,
            "G" | "GB" | "GIB" => 30,
            "T" | "TB" | "TIB" => 40,
            _ => return None,
        };
        n.checked_mul(1u64 << shift).filter(|&n| n > 0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 104857600, \"100MiB\" or \"1G\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .ok()
                    .filter(|&v| v > 0)
                    .map(ByteSize)
                    .ok_or_else(|| E::custom("a size must be above zero"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map(ByteSize).ok_or_else(|| {
                    E::custom("is not a size: use a number above zero and B, K, M, G or T (100M)")
                })
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// The name of an environment variable that holds a secret (`NEXUS_AUDIT_HEC_TOKEN`): the
/// secret itself never appears in the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EnvName(String);

impl EnvName {
    /// The variable's name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        let mut chars = name.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(EnvName(name))
        } else {
            Err(de::Error::custom(
                "is not the name of an environment variable (letters, digits and _, not starting \
                 with a digit); give the variable's name, never the secret",
            ))
        }
    }
}

/// An extra HTTP header for `ship`, `Name: value`. A header whose name says it carries a
/// credential (`Authorization`, `X-Api-Key`, `Cookie`, …) is refused: secrets go in
/// `token_file`/`token_env` or `secret_file`/`secret_env`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Header(String);

impl Header {
    /// The header's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.0.split_once(':').map_or("", |(n, _)| n.trim())
    }

    /// The header's value.
    #[must_use]
    pub fn value(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, v)| v.trim())
    }
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let Some((name, _)) = text.split_once(':') else {
            return Err(de::Error::custom(
                "is not a header: write it as \"Name: value\"",
            ));
        };
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(de::Error::custom(
                "is not a header: write it as \"Name: value\"",
            ));
        }
        if Redactor::default().is_sensitive_key(name) || name.eq_ignore_ascii_case("x-api-key") {
            return Err(de::Error::custom(format!(
                "would hold a secret inline (header {name}); give it as token_file or token_env \
                 instead"
            )));
        }
        Ok(Header(text))
    }
}

/// An extra sensitive key word for redaction (see [`RedactionRules::extra_keys`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct KeyWord(pub String);

impl<'de> Deserialize<'de> for KeyWord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = String::deserialize(d)?;
        let rules = RedactionRules {
            extra_keys: vec![word.clone()],
            ..RedactionRules::default()
        };
        Redactor::new(&rules).map_err(|e| de::Error::custom(plain(&e)))?;
        Ok(KeyWord(word))
    }
}

/// An extra value pattern for redaction (see [`RedactionRules::extra_patterns`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Pattern(pub String);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pattern = String::deserialize(d)?;
        let rules = RedactionRules {
            extra_patterns: vec![pattern.clone()],
            ..RedactionRules::default()
        };
        Redactor::new(&rules).map_err(|e| de::Error::custom(plain(&e)))?;
        Ok(Pattern(pattern))
    }
}

/// A non-empty line of text (an id, an address, a destination).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim().is_empty() || text.chars().any(char::is_control) {
            return Err(de::Error::custom(
                "must be one line of text, not empty and without control characters",
            ));
        }
        Ok(Text(text))
    }
}

/// The library error's sentence without its variant's prefix.
fn plain(e: &crate::Error) -> String {
    let text = e.to_string();
    text.split_once(": ")
        .filter(|(head, _)| head.starts_with("invalid configuration"))
        .map_or(text.clone(), |(_, rest)| rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_units_of_1024() {
        assert_eq!(ByteSize::parse("100MiB"), Some(100 << 20));
        assert_eq!(ByteSize::parse("1G"), Some(1 << 30));
        assert_eq!(ByteSize::parse("512"), Some(512));
        assert_eq!(ByteSize::parse("0"), None);
        assert_eq!(ByteSize::parse("12 parsecs"), None);
    }
}
