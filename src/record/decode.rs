//! Decoding an [`Event`] from JSON: a streaming fast path that fills the fields as they are
//! parsed, and the slow path through a map that words every error.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{Event, SlotMut};
use crate::chain;
use crate::error::{Error, Result};

impl Event {
    /// Builds an event from a JSON object that uses the record's field names. `seq`,
    /// `prev_hash` and `schema_version` are ignored, whatever their value (the writer sets
    /// them); unknown fields go to [`Event::extra`]; `null` counts as absent.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] when the value is not an object or a standard field has the
    /// wrong type.
    pub fn from_json(value: Value) -> Result<Self> {
        match value {
            Value::Object(map) => Self::from_map(map),
            other => Err(Error::InvalidEvent(format!(
                "expected a JSON object, found {}",
                json_kind(&other)
            ))),
        }
    }

    /// Parses one JSON object from text; see [`Event::from_json`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] when the text is not one JSON object with well-typed fields.
    pub fn from_json_str(text: &str) -> Result<Self> {
        // Fast path: fields go straight into the event, without building a map of the top
        // level first. Any failure is re-done on the slow path, which words the error.
        let mut e = Event::default();
        let mut field_error = None;
        let mut de = serde_json::Deserializer::from_str(text);
        let fast = serde::Deserializer::deserialize_map(
            &mut de,
            Fields {
                event: &mut e,
                error: &mut field_error,
            },
        )
        .and_then(|()| de.end());
        if let Some(err) = field_error {
            return Err(err);
        }
        if fast.is_ok() {
            return Ok(e);
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::InvalidEvent(format!("not valid JSON: {e}")))?;
        Self::from_json(value)
    }

    fn from_map(map: Map<String, Value>) -> Result<Self> {
        let mut e = Event::default();
        for (key, value) in map {
            e.set(Cow::Owned(key), value)?;
        }
        Ok(e)
    }

    /// Sets the field called `name` from its JSON value, as decoding does: `null` clears it,
    /// `seq`, `prev_hash` and `schema_version` are ignored (the writer sets them), and a name
    /// that is not a field of the record (see [`FIELD_ORDER`](crate::FIELD_ORDER)) is an extra
    /// field.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] when the value has the wrong type for the field.
    pub fn set_field(&mut self, name: &str, value: Value) -> Result<()> {
        self.set(Cow::Borrowed(name), value)
    }

    /// [`Event::set_field`], keeping an owned name for an extra field without copying it.
    fn set(&mut self, key: Cow<'_, str>, value: Value) -> Result<()> {
        let Some(field) = chain::field(&key) else {
            if value.is_null() {
                self.extra.shift_remove(&*key);
            } else {
                self.extra.insert(key.into_owned(), value);
            }
            return Ok(());
        };
        let null = value.is_null();
        match self.slot_mut(field.id) {
            SlotMut::Writer => {}
            SlotMut::Text(slot) => {
                *slot = match value {
                    Value::Null => None,
                    Value::String(s) => Some(s),
                    other => return Err(wrong(&key, "a string", &other)),
                };
            }
            SlotMut::Json(slot) => *slot = Some(value).filter(|_| !null),
            SlotMut::Count(slot) => {
                *slot = if null {
                    None
                } else {
                    Some(as_u64(&key, &value)?)
                };
            }
            SlotMut::Signed(slot) => {
                *slot = if null {
                    None
                } else {
                    Some(
                        value
                            .as_i64()
                            .ok_or_else(|| wrong(&key, "an integer", &value))?,
                    )
                };
            }
            SlotMut::Flag(slot) => {
                *slot = if null {
                    None
                } else {
                    Some(
                        value
                            .as_bool()
                            .ok_or_else(|| wrong(&key, "true or false", &value))?,
                    )
                };
            }
        }
        Ok(())
    }
}

/// Reads a JSON object's fields into an [`Event`] as they are parsed.
struct Fields<'a> {
    event: &'a mut Event,
    /// A field with the wrong type, worded for the user (serde's message is not).
    error: &'a mut Option<Error>,
}

impl<'de> serde::de::Visitor<'de> for Fields<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key()? {
            let value: Value = map.next_value()?;
            if let Err(err) = self.event.set(key, value) {
                *self.error = Some(err);
                return Err(serde::de::Error::custom("field of the wrong type"));
            }
        }
        Ok(())
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

fn as_u64(key: &str, value: &Value) -> Result<u64> {
    if let Some(n) = value.as_u64() {
        return Ok(n);
    }
    match value.as_f64() {
        Some(f) if f.is_finite() && (0.0..1.8e19).contains(&f) => Ok(f.round() as u64),
        _ => Err(wrong(key, "a non-negative integer", value)),
    }
}

fn wrong(key: &str, expected: &str, value: &Value) -> Error {
    Error::InvalidEvent(format!(
        "field `{key}` must be {expected}, found {}",
        json_kind(value)
    ))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn from_json_rejects_wrong_types_and_keeps_extras() {
        let err = Event::from_json(json!({"tool": 5})).expect_err("tool must be a string");
        assert!(err.to_string().contains("`tool` must be a string"));
        let e = Event::from_json(json!({"tool": "x", "seq": 9, "team": "blue"})).expect("ok");
        assert_eq!(e.extra.get("team"), Some(&json!("blue")));
        assert!(!e.extra.contains_key("seq"));
        assert!(Event::from_json(json!([1])).is_err());
    }

    /// The streaming parse gives the same event as parsing to a map first.
    #[test]
    fn from_json_str_agrees_with_from_json() {
        for text in [
            r#"{"tool":"a","user_id":"u","latency_ms":5,"args_summary":{"b":1,"a":[2]}}"#,
            r#"{"tool":"a","tool":null}"#,
            r#"{"tool":null,"tool":"b"}"#,
            r#"{"x":1,"y":{"z":null},"x":null}"#,
            r#"{"t\u006fol":"escaped key","seq":7,"prev_hash":"zz"}"#,
            r#"{"mock_mode":true,"reduction_percent":-3,"response_size":1.0}"#,
            r"{}",
        ] {
            let slow = Event::from_json(serde_json::from_str(text).expect("JSON")).expect("slow");
            let fast = Event::from_json_str(text).expect("fast");
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{text}");
        }
        for (text, says) in [
            (r#"{"tool":5}"#, "`tool` must be a string"),
            (
                r#"{"latency_ms":"slow"}"#,
                "`latency_ms` must be a non-negative integer",
            ),
            ("[1]", "expected a JSON object, found an array"),
            (r#"{"tool":"#, "not valid JSON"),
            (r#"{"tool":"a"} x"#, "not valid JSON"),
        ] {
            let err = Event::from_json_str(text).expect_err(text).to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
