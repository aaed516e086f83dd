//! [`RecordView`]: the fields readers need, borrowed out of a stored line.

use std::borrow::Cow;

/// The fields of a stored record that readers filter, count and display, borrowed from the
/// line where no unescaping is needed. Unknown fields are skipped; `null` reads as absent.
/// Each field is the record's field of the same name (see [`FIELD_ORDER`](crate::FIELD_ORDER)).
#[derive(Debug, Default)]
pub struct RecordView<'a> {
    /// `seq`, when it is a non-negative integer.
    pub seq: Option<u64>,
    /// `timestamp`, as stored.
    pub timestamp: Option<Cow<'a, str>>,
    /// `action`.
    pub action: Option<Cow<'a, str>>,
    /// `user_id`.
    pub user_id: Option<Cow<'a, str>>,
    /// `session_id`.
    pub session_id: Option<Cow<'a, str>>,
    /// `server_id`.
    pub server_id: Option<Cow<'a, str>>,
    /// `tool`.
    pub tool: Option<Cow<'a, str>>,
    /// `shard`, as stored (old logs may have none: see the filter's inference).
    pub shard: Option<Cow<'a, str>>,
    /// `action_category`, as stored.
    pub action_category: Option<Cow<'a, str>>,
    /// `resource`.
    pub resource: Option<Cow<'a, str>>,
    /// `status`.
    pub status: Option<Cow<'a, str>>,
    /// `error_type`.
    pub error_type: Option<Cow<'a, str>>,
    /// `error_message`.
    pub error_message: Option<Cow<'a, str>>,
    /// `latency_ms`, when it is a number (old logs may hold a fraction).
    pub latency_ms: Option<f64>,
    /// `mock_mode`, when it is a boolean.
    pub mock_mode: Option<bool>,
}

/// A line that is not shaped like a JSON object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the line is not a JSON object")]
pub struct NotARecord;

impl<'a> RecordView<'a> {
    /// Reads the fields readers need out of one line, borrowing strings without escapes.
    /// Other fields, and nested values, are skipped without being decoded; a field of an
    /// unexpected type reads as absent.
    ///
    /// # Errors
    ///
    /// [`NotARecord`] when the line is not shaped like one JSON object.
    pub fn parse(line: &'a [u8]) -> Result<Self, NotARecord> {
        let mut v = RecordView::default();
        crate::json::for_each_field(line, |key, raw| {
            use crate::json::Raw;
            let text = || raw.text();
            match key {
                b"seq" => {
                    v.seq = match raw {
                        Raw::Num(n) => std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()),
                        _ => None,
                    };
                }
                b"timestamp" => v.timestamp = text(),
                b"action" => v.action = text(),
                b"user_id" => v.user_id = text(),
                b"session_id" => v.session_id = text(),
                b"server_id" => v.server_id = text(),
                b"tool" => v.tool = text(),
                b"shard" => v.shard = text(),
                b"action_category" => v.action_category = text(),
                b"resource" => v.resource = text(),
                b"status" => v.status = text(),
                b"error_type" => v.error_type = text(),
                b"error_message" => v.error_message = text(),
                b"latency_ms" => {
                    v.latency_ms = match raw {
                        Raw::Num(n) => std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()),
                        _ => None,
                    };
                }
                b"mock_mode" => {
                    v.mock_mode = match raw {
                        Raw::Bool(b) => Some(b),
                        _ => None,
                    };
                }
                _ => {}
            }
        })
        .map_err(|()| NotARecord)?;
        Ok(v)
    }

    /// `latency_ms` as a whole number of milliseconds, when present and non-negative.
    #[must_use]
    pub fn latency(&self) -> Option<u64> {
        self.latency_ms
            .filter(|l| l.is_finite() && *l >= 0.0)
            .map(|l| l.round() as u64)
    }

    /// The resource shown in tables: `resource`, else `server_id:tool`, else the tool.
    #[must_use]
    pub fn display_resource(&self) -> Cow<'_, str> {
        if let Some(r) = &self.resource {
            return Cow::Borrowed(r);
        }
        match (&self.server_id, &self.tool) {
            (Some(s), Some(t)) => Cow::Owned(format!("{s}:{t}")),
            (None, Some(t)) => Cow::Borrowed(t),
            (Some(s), None) => Cow::Borrowed(s),
            (None, None) => Cow::Borrowed(""),
        }
    }

    /// True when `status` is `error` (or the old logger's `failure`).
    #[must_use]
    pub fn is_error(&self) -> bool {
        matches!(self.status.as_deref(), Some("error" | "failure" | "failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_view_borrows_and_tolerates_nulls() {
        let line =
            br#"{"seq":1,"tool":"t","status":null,"latency_ms":12,"args_summary":{"a":[1]}}"#;
        let v = RecordView::parse(line).expect("parse");
        assert!(matches!(v.tool, Some(Cow::Borrowed("t"))));
        assert_eq!(v.status, None);
        assert_eq!(v.latency(), Some(12));
    }
}
