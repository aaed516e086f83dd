//! The record model (SPEC §3): [`Event`], what a caller hands the writer, and
//! [`RecordView`], what a reader borrows out of a stored line.

mod decode;
mod encode;
mod view;

use serde_json::{Map, Value};

// NOTE: kept at their old path for the modules that still import them from here.
pub use crate::time::{format_timestamp, parse_timestamp};
pub use encode::reduction_percent;
pub(crate) use encode::{Encoder, new_event_id};
pub use view::{NotARecord, RecordView};

/// One event to append. Every field is optional; the writer fills `event_id`, `timestamp`,
/// `source`, `shard`, `action_category` and `resource` when they are absent (and `action` =
/// `mcp_call` for an event with a `tool` but no action), and always sets `seq`, `prev_hash` and
/// `schema_version` itself: the version names the format of the line, which is the writer's.
///
/// ```
/// use nexus_audit::Event;
/// let event = Event::new("mcp_call")
///     .tool("workday_get_worker")
///     .user("alice@example.com")
///     .server("workday-mcp")
///     .status_success()
///     .latency_ms(42)
///     .args(serde_json::json!({"worker_id": "W123", "api_key": "will be redacted"}));
/// assert_eq!(event.tool.as_deref(), Some("workday_get_worker"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[allow(missing_docs)]
pub struct Event {
    pub event_id: Option<String>,
    pub timestamp: Option<String>,
    pub source: Option<String>,
    pub level: Option<String>,
    pub action: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub correlation_id: Option<String>,
    pub server_id: Option<String>,
    pub tool: Option<String>,
    pub shard: Option<String>,
    pub action_category: Option<String>,
    pub resource: Option<String>,
    pub args_summary: Option<Value>,
    pub details: Option<Value>,
    pub status: Option<String>,
    pub latency_ms: Option<u64>,
    pub response_size: Option<u64>,
    pub filtered_size: Option<u64>,
    pub reduction_percent: Option<i64>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub mock_mode: Option<bool>,
    /// Caller-supplied top-level fields beyond the standard ones, redacted like `details`.
    pub extra: Map<String, Value>,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident => $field:ident;)*) => {$(
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, value: impl Into<String>) -> Self {
            self.$field = Some(value.into());
            self
        }
    )*};
}

impl Event {
    /// A new event with the given `action` (`mcp_call`, `server_start`, …).
    #[must_use]
    pub fn new(action: impl Into<String>) -> Self {
        Event {
            action: Some(action.into()),
            ..Event::default()
        }
    }

    setters! {
        /// Sets `tool`.
        tool => tool;
        /// Sets `user_id`.
        user => user_id;
        /// Sets `server_id`.
        server => server_id;
        /// Sets `session_id`.
        session => session_id;
        /// Sets `correlation_id`.
        correlation => correlation_id;
        /// Sets `resource`.
        resource => resource;
        /// Sets `level`.
        level => level;
        /// Sets `status`.
        status => status;
        /// Sets `error_type`.
        error_type => error_type;
        /// Sets `error_message` (sanitised when written).
        error_message => error_message;
        /// Sets `shard`.
        shard => shard;
        /// Sets `action_category`.
        category => action_category;
        /// Sets `source`.
        source => source;
    }

    /// Sets `status` to `success`.
    #[must_use]
    pub fn status_success(self) -> Self {
        self.status("success")
    }

    /// Sets `status` to `error`, with the error's class and message.
    #[must_use]
    pub fn failed(self, error_type: impl Into<String>, message: impl Into<String>) -> Self {
        self.status("error")
            .error_type(error_type)
            .error_message(message)
    }

    /// Sets `latency_ms`.
    #[must_use]
    pub fn latency_ms(mut self, ms: u64) -> Self {
        self.latency_ms = Some(ms);
        self
    }

    /// Sets `args_summary` (redacted when written).
    #[must_use]
    pub fn args(mut self, args: Value) -> Self {
        self.args_summary = Some(args);
        self
    }

    /// Sets `details` (redacted when written).
    #[must_use]
    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Sets `response_size` and `filtered_size`.
    #[must_use]
    pub fn sizes(mut self, response: u64, filtered: u64) -> Self {
        self.response_size = Some(response);
        self.filtered_size = Some(filtered);
        self
    }

    /// Sets `mock_mode`.
    #[must_use]
    pub fn mock(mut self, mock: bool) -> Self {
        self.mock_mode = Some(mock);
        self
    }
}
