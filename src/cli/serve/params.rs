//! Query parameters: parsed strictly (an unknown or repeated name is a 400, so a typo never
//! widens an audit query to everything), and the CLI's filters built from them.

use std::collections::BTreeMap;

use crate::Filter;

use super::error::ApiError;
use crate::cli::FilterArgs;

/// The filter parameters, named as the CLI's flags.
pub const FILTERS: &[&str] = &[
    "user", "server", "tool", "action", "status", "shard", "category", "session", "since", "until",
];

/// A request's parameters.
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses `query`, accepting the filters and `extra` names.
    pub fn parse(query: Option<&str>, extra: &[&str]) -> Result<Params, ApiError> {
        let mut map = BTreeMap::new();
        let query = query.unwrap_or("");
        for piece in query.split('&').filter(|p| !p.is_empty()) {
            let (raw_key, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
            let decode = |s: &str| -> Result<String, ApiError> {
                String::from_utf8(percent_decode(s)).map_err(|_| {
                    ApiError::BadRequest("a query parameter is not valid UTF-8 once decoded".into())
                })
            };
            let key = decode(raw_key)?;
            let value = decode(raw_value)?;
            if !FILTERS.contains(&key.as_str()) && !extra.contains(&key.as_str()) {
                let mut known: Vec<&str> = FILTERS.iter().chain(extra).copied().collect();
                known.sort_unstable();
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter {:?}: this path takes {}",
                    shorten(&key),
                    known.join(", ")
                )));
            }
            if map.insert(key.clone(), value).is_some() {
                return Err(ApiError::BadRequest(format!(
                    "the parameter {key:?} is given twice"
                )));
            }
        }
        Ok(Params(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A whole number, or `default` when absent.
    pub fn number(&self, key: &str, default: u64) -> Result<u64, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "{key} must be a whole number of 0 or more, not {:?}",
                    shorten(v)
                ))
            }),
        }
    }

    /// One of `choices`, or `None` when absent.
    pub fn choice<'c>(&self, key: &str, choices: &[&'c str]) -> Result<Option<&'c str>, ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        choices
            .iter()
            .find(|c| **c == v)
            .map(|c| Some(*c))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{key} must be one of {}, not {:?}",
                    choices.join(", "),
                    shorten(v)
                ))
            })
    }

    /// The CLI's filter, with the same syntax and the same error sentences as its flags.
    pub fn filter(&self) -> Result<Filter, ApiError> {
        let get = |k: &str| self.get(k).map(str::to_owned);
        let args = FilterArgs {
            user: get("user"),
            server: get("server"),
            tool: get("tool"),
            action: get("action"),
            status: get("status"),
            shard: get("shard"),
            category: get("category"),
            session: get("session"),
            since: get("since"),
            until: get("until"),
        };
        args.to_filter()
            .map_err(|e| ApiError::BadRequest(format!("{e:#}")))
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    out.push(v);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// At most 80 characters of a value echoed in an error sentence.
pub fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_owned()
    } else {
        s.chars().take(79).collect::<String>() + "…"
    }
}
