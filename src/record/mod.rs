//! The record model (SPEC §3): [`Event`], what a caller hands the writer, and
//! [`RecordView`], what a reader borrows out of a stored line.

mod decode;
mod encode;
mod plain;
mod view;

use serde_json::{Map, Value};

use crate::chain::{FIELDS, FieldId};

// NOTE: kept at their old path for the modules that still import them from here.
pub(crate) use encode::Encoder;
pub(crate) use plain::{PlainDefaults, Scratch};
pub use view::{NotARecord, RecordView};

/// Builds [`Event`] and its access by [`FieldId`] from the rows of
/// [`with_record_fields`](crate::chain::with_record_fields): one `Option` per field a caller can
/// give, documented with the row's description.
macro_rules! event_struct {
    ($($name:ident: $kind:ident, $stored:ident
        $(, event $about:literal)? $(, flag $flag:literal $help:literal)?;)*) => {
        /// One event to append. Every field is optional; the writer fills `event_id`,
        /// `timestamp`, `source`, `shard`, `action_category` and `resource` when they are absent
        /// (and `action` = `mcp_call` for an event with a `tool` but no action, and `level` =
        /// `error` for an event whose status is `error`, else `info`), and always sets
        /// `seq`, `prev_hash` and `schema_version` itself: the version names the format of the
        /// line, which is the writer's. The fields are those of
        /// [`FIELD_ORDER`](crate::FIELD_ORDER) that a caller can give.
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
        pub struct Event {
            $($(
                #[doc = $about]
                pub $name: Option<field_type!($kind)>,
            )?)*
            /// Caller-supplied top-level fields beyond the standard ones, redacted like `details`.
            pub extra: Map<String, Value>,
        }

        impl Event {
            /// The field `id` of this event.
            pub(crate) fn slot(&self, id: FieldId) -> Slot<'_> {
                match id {
                    $(FieldId::$name => slot!(Slot, &self.$name, $kind $(, $about)?),)*
                }
            }

            /// The field `id` of this event, to change.
            pub(crate) fn slot_mut(&mut self, id: FieldId) -> SlotMut<'_> {
                match id {
                    $(FieldId::$name => slot!(SlotMut, &mut self.$name, $kind $(, $about)?),)*
                }
            }
        }
    };
}

/// The Rust type of a field of [`Kind`](crate::chain::Kind) `$kind`.
macro_rules! field_type {
    (Text) => {
        String
    };
    (Json) => {
        Value
    };
    (Count) => {
        u64
    };
    (Signed) => {
        i64
    };
    (Flag) => {
        bool
    };
}

/// A [`Slot`] or [`SlotMut`] on a field: the writer's own fields (without a description) have
/// none in an [`Event`].
macro_rules! slot {
    ($slot:ident, $place:expr, $kind:ident, $about:literal) => {
        $slot::$kind($place)
    };
    ($slot:ident, $place:expr, $kind:ident) => {
        $slot::Writer
    };
}

crate::chain::with_record_fields!(event_struct);

/// One field of an [`Event`], by its JSON type.
#[derive(Debug)]
pub(crate) enum Slot<'a> {
    Text(&'a Option<String>),
    Json(&'a Option<Value>),
    Count(&'a Option<u64>),
    Signed(&'a Option<i64>),
    Flag(&'a Option<bool>),
    /// A field the writer sets itself (`seq`, `prev_hash`, `schema_version`).
    Writer,
}

/// One field of an [`Event`], by its JSON type, to change.
#[derive(Debug)]
pub(crate) enum SlotMut<'a> {
    Text(&'a mut Option<String>),
    Json(&'a mut Option<Value>),
    Count(&'a mut Option<u64>),
    Signed(&'a mut Option<i64>),
    Flag(&'a mut Option<bool>),
    /// A field the writer sets itself (`seq`, `prev_hash`, `schema_version`).
    Writer,
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

    /// Fills every field this event lacks, extra fields included, from `defaults`: what
    /// `append` does with its flags when the event comes from `--json` or `--stdin`.
    ///
    /// ```
    /// use nexus_audit::Event;
    /// let mut event = Event::new("mcp_call").tool("a");
    /// event.fill_from(&Event::default().tool("b").user("alice"));
    /// assert_eq!(event.tool.as_deref(), Some("a"));
    /// assert_eq!(event.user_id.as_deref(), Some("alice"));
    /// ```
    pub fn fill_from(&mut self, defaults: &Event) {
        fn fill<T: Clone>(slot: &mut Option<T>, default: Option<&T>) {
            if slot.is_none() {
                *slot = default.cloned();
            }
        }
        for field in FIELDS {
            match (self.slot_mut(field.id), defaults.slot(field.id)) {
                (SlotMut::Text(slot), Slot::Text(default)) => fill(slot, default.as_ref()),
                (SlotMut::Json(slot), Slot::Json(default)) => fill(slot, default.as_ref()),
                (SlotMut::Count(slot), Slot::Count(default)) => fill(slot, default.as_ref()),
                (SlotMut::Signed(slot), Slot::Signed(default)) => fill(slot, default.as_ref()),
                (SlotMut::Flag(slot), Slot::Flag(default)) => fill(slot, default.as_ref()),
                _ => {}
            }
        }
        for (key, value) in &defaults.extra {
            if !self.extra.contains_key(key) {
                self.extra.insert(key.clone(), value.clone());
            }
        }
    }
}
