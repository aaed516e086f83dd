//! Record filters shared by `tail`, `query`, `stats` and `export` (the times they take are
//! read by [`crate::time`]).

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::record::RecordView;
use crate::taxonomy::Taxonomy;
use crate::time::{format_timestamp, is_canonical, parse_timestamp};
// NOTE: kept at their old path for the command line, which imports them from here.

/// Which records to keep. Every given field must match; `None` matches anything.
///
/// String fields match exactly, or by prefix when they end with `*` (`--tool 'workday_*'`).
/// `since` is inclusive, `until` exclusive.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// `user_id` (`--user`).
    pub user: Option<String>,
    /// `server_id` (`--server`).
    pub server: Option<String>,
    /// `tool` (`--tool`).
    pub tool: Option<String>,
    /// `action` (`--action`).
    pub action: Option<String>,
    /// `status` (`--status`).
    pub status: Option<String>,
    /// `shard` (`--shard`).
    pub shard: Option<String>,
    /// `action_category` (`--category`).
    pub category: Option<String>,
    /// `session_id` (`--session`).
    pub session: Option<String>,
    /// Records at or after this time (`--since`).
    pub since: Option<DateTime<Utc>>,
    /// Records before this time (`--until`).
    pub until: Option<DateTime<Utc>>,
}

/// A filter prepared for fast matching.
#[derive(Clone, Debug)]
pub struct Matcher {
    filter: Filter,
    since: Option<String>,
    until: Option<String>,
    taxonomy: Taxonomy,
}

impl Filter {
    /// True when nothing is filtered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        let f = self;
        f.user.is_none()
            && f.server.is_none()
            && f.tool.is_none()
            && f.action.is_none()
            && f.status.is_none()
            && f.shard.is_none()
            && f.category.is_none()
            && f.session.is_none()
            && f.since.is_none()
            && f.until.is_none()
    }

    /// Prepares the filter for matching many records.
    #[must_use]
    pub fn matcher(&self) -> Matcher {
        Matcher {
            filter: self.clone(),
            since: self.since.map(format_timestamp),
            until: self.until.map(format_timestamp),
            taxonomy: Taxonomy::default(),
        }
    }
}

fn field_matches(want: Option<&String>, have: Option<&Cow<'_, str>>) -> bool {
    let Some(want) = want else { return true };
    let Some(have) = have else { return false };
    match want.strip_suffix('*') {
        Some(prefix) => have.starts_with(prefix),
        None => have.as_ref() == want,
    }
}

impl Matcher {
    /// True when nothing is filtered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }

    /// True when the record passes every condition.
    #[must_use]
    pub fn matches(&self, r: &RecordView<'_>) -> bool {
        let f = &self.filter;
        if !(field_matches(f.user.as_ref(), r.user_id.as_ref())
            && field_matches(f.server.as_ref(), r.server_id.as_ref())
            && field_matches(f.tool.as_ref(), r.tool.as_ref())
            && field_matches(f.action.as_ref(), r.action.as_ref())
            && field_matches(f.status.as_ref(), r.status.as_ref())
            && field_matches(f.session.as_ref(), r.session_id.as_ref()))
        {
            return false;
        }
        if f.shard.is_some() {
            let shard = self.shard_of(r);
            if !field_matches(f.shard.as_ref(), shard.as_ref()) {
                return false;
            }
        }
        if f.category.is_some() {
            let cat = self.category_of(r);
            if !field_matches(f.category.as_ref(), cat.as_ref()) {
                return false;
            }
        }
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some(ts) = r.timestamp.as_deref() else {
            return false;
        };
        if is_canonical(ts) {
            self.since.as_deref().is_none_or(|s| ts >= s)
                && self.until.as_deref().is_none_or(|u| ts < u)
        } else {
            let Some(t) = parse_timestamp(ts) else {
                return false;
            };
            f.since.is_none_or(|s| t >= s) && f.until.is_none_or(|u| t < u)
        }
    }

    /// The record's shard, inferred from its tool when not stored (old logs).
    #[must_use]
    pub fn shard_of<'a>(&self, r: &'a RecordView<'_>) -> Option<Cow<'a, str>> {
        match (&r.shard, &r.tool) {
            (Some(s), _) => Some(Cow::Borrowed(s.as_ref())),
            (None, Some(t)) => Some(Cow::Owned(self.taxonomy.shard_for(t).to_owned())),
            (None, None) => None,
        }
    }

    /// The record's action category, inferred from its tool when not stored (old logs).
    #[must_use]
    pub fn category_of<'a>(&self, r: &'a RecordView<'_>) -> Option<Cow<'a, str>> {
        match (&r.action_category, &r.tool) {
            (Some(s), _) => Some(Cow::Borrowed(s.as_ref())),
            (None, Some(t)) => Some(Cow::Owned(self.taxonomy.category_for(t).to_owned())),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_time;

    #[test]
    fn filters_match_exact_prefix_and_time() -> Result<(), String> {
        let line = br#"{"timestamp":"2026-11-22T09:05:04.123456Z","tool":"workday_get_worker","user_id":"alice","status":"success"}"#;
        let r = RecordView::parse(line).map_err(|e| e.to_string())?;
        let now = Utc::now();
        let f = |f: Filter| f.matcher().matches(&r);
        assert!(f(Filter::default()));
        assert!(f(Filter {
            tool: Some("workday_*".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            tool: Some("workday".into()),
            ..Filter::default()
        }));
        assert!(f(Filter {
            shard: Some("workday".into()),
            ..Filter::default()
        }));
        assert!(f(Filter {
            since: Some(parse_time("2026-11-22", now)?),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            until: Some(parse_time("2026-11-22T09:05:04.123456Z", now)?),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            user: Some("bob".into()),
            ..Filter::default()
        }));
        Ok(())
    }
}
