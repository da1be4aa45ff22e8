//! Claim extraction for `$identity_claim_NAME`: top-level fields of a JSON object body.
//!
//! Parsing records where each top-level value lies in the body instead of building a
//! tree: one validation pass and one small allocation per body, and a claim's text is
//! taken from its own bytes only when a variable asks for it. Numbers keep their exact
//! text this way.

use core::fmt;
use core::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

/// Why a body offers no claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("the user service body is not valid JSON")]
    NotJson,
    #[error("the user service body is JSON but not an object")]
    NotAnObject,
}

/// A top-level key: where it lies in the body, or its text when it held escapes.
#[derive(Debug)]
enum Key {
    Span(Range<usize>),
    Owned(String),
}

/// The top-level fields of an identity body, as spans of that body.
#[derive(Debug)]
pub struct Claims {
    fields: Vec<(Key, Range<usize>)>,
}

impl Claims {
    /// Parses a body; it must be a UTF-8 JSON object (RFC 8259).
    pub fn parse(body: &[u8]) -> Result<Self, ClaimsError> {
        let text = core::str::from_utf8(body).map_err(|_| ClaimsError::NotJson)?;
        let mut de = serde_json::Deserializer::from_str(text);
        let fields = de
            .deserialize_any(FieldsVisitor {
                base: text.as_ptr() as usize,
            })
            .map_err(|e| {
                if e.is_data() {
                    ClaimsError::NotAnObject
                } else {
                    ClaimsError::NotJson
                }
            })?;
        de.end().map_err(|_| ClaimsError::NotJson)?;
        Ok(Claims { fields })
    }

    /// The raw JSON text of the top-level field called exactly `name` (the first, if the
    /// object repeats it).
    pub fn raw<'a>(&self, body: &'a [u8], name: &str) -> Option<&'a str> {
        self.raw_all(body, name).first().copied()
    }

    /// The raw JSON text of every top-level field called exactly `name` (escapes in the
    /// key decoded), in order: JSON allows a repeated key, and readers differ on which
    /// copy wins, so a check that must be unambiguous looks at all of them.
    pub fn raw_all<'a>(&self, body: &'a [u8], name: &str) -> Vec<&'a str> {
        let Ok(text) = core::str::from_utf8(body) else {
            return Vec::new();
        };
        self.fields
            .iter()
            .filter_map(|(k, v)| {
                let key = match k {
                    Key::Span(r) => text.get(r.clone())?,
                    Key::Owned(s) => s.as_str(),
                };
                (key == name).then(|| text.get(v.clone())).flatten()
            })
            .collect()
    }

    /// The text of claim `name` in `body` (the body `parse` was given), or `None` when
    /// absent or null. nginx lowercases variable names, so an exact match is tried first
    /// and then a case-insensitive one (`$identity_claim_userid` finds `userId`).
    pub fn get(&self, body: &[u8], name: &str) -> Option<String> {
        let text = core::str::from_utf8(body).ok()?;
        fn key_text<'a>(text: &'a str, k: &'a Key) -> &'a str {
            match k {
                Key::Span(r) => text.get(r.clone()).unwrap_or_default(),
                Key::Owned(s) => s,
            }
        }
        let value = self
            .fields
            .iter()
            .find(|(k, _)| key_text(text, k) == name)
            .or_else(|| {
                self.fields
                    .iter()
                    .find(|(k, _)| key_text(text, k).eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| text.get(v.clone()).unwrap_or_default())?;
        claim_text(value)
    }
}

/// Strings as they are, numbers as written, booleans as `true`/`false`, arrays of
/// scalars joined with commas, anything else as compact JSON; null is absent.
fn claim_text(raw: &str) -> Option<String> {
    match raw.as_bytes().first()? {
        b'n' => None,
        b'"' => serde_json::from_str::<String>(raw).ok(),
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(raw).ok()?;
            if items
                .iter()
                .all(|i| !matches!(i.get().as_bytes().first(), Some(b'[' | b'{')))
            {
                Some(
                    items
                        .iter()
                        .filter_map(|i| claim_text(i.get()))
                        .collect::<Vec<_>>()
                        .join(","),
                )
            } else {
                compact(raw)
            }
        }
        b'{' => compact(raw),
        // Numbers and booleans: their own text.
        _ => Some(raw.to_string()),
    }
}

fn compact(raw: &str) -> Option<String> {
    serde_json::from_str::<Value>(raw)
        .ok()
        .and_then(|v| serde_json::to_string(&v).ok())
}

/// Visits the top-level object, recording each key's and value's span.
struct FieldsVisitor {
    base: usize,
}

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Vec<(Key, Range<usize>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key_seed(KeySeed { base: self.base })? {
            let value: &'de RawValue = map.next_value()?;
            let start = value.get().as_ptr() as usize - self.base;
            fields.push((key, start..start + value.get().len()));
        }
        Ok(fields)
    }
}

struct KeySeed {
    base: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Key, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key, E> {
        let start = v.as_ptr() as usize - self.base;
        Ok(Key::Span(start..start + v.len()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key::Owned(v.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(body: &str, name: &str) -> Option<String> {
        Claims::parse(body.as_bytes())
            .expect("test body is a JSON object")
            .get(body.as_bytes(), name)
    }

    #[test]
    fn scalars_render_as_text() {
        let b = r#"{"id":"alice","n":42,"big":12345678901234567890123,"f":1.50,"e":1e3,"ok":true,"no":false,"nil":null}"#;
        assert_eq!(get(b, "id").as_deref(), Some("alice"));
        assert_eq!(get(b, "n").as_deref(), Some("42"));
        assert_eq!(get(b, "big").as_deref(), Some("12345678901234567890123"));
        assert_eq!(get(b, "f").as_deref(), Some("1.50"));
        assert_eq!(get(b, "e").as_deref(), Some("1e3"));
        assert_eq!(get(b, "ok").as_deref(), Some("true"));
        assert_eq!(get(b, "no").as_deref(), Some("false"));
        assert_eq!(get(b, "nil"), None);
        assert_eq!(get(b, "missing"), None);
    }

    #[test]
    fn arrays_and_objects() {
        let b = r#"{"roles":["admin","dev",3,true], "org" : { "b" : 1, "a" : [1, 2] },"mixed":[{"x":1},2],"empty":[]}"#;
        assert_eq!(get(b, "roles").as_deref(), Some("admin,dev,3,true"));
        assert_eq!(get(b, "org").as_deref(), Some(r#"{"b":1,"a":[1,2]}"#));
        assert_eq!(get(b, "mixed").as_deref(), Some(r#"[{"x":1},2]"#));
        assert_eq!(get(b, "empty").as_deref(), Some(""));
    }

    #[test]
    fn names_fall_back_to_case_insensitive() {
        assert_eq!(
            get(r#"{"userId":"u1","userid":"exact"}"#, "userid").as_deref(),
            Some("exact")
        );
        assert_eq!(get(r#"{"userId":"u1"}"#, "userid").as_deref(), Some("u1"));
        assert_eq!(
            get(r#"{"us\u0065r":"escaped key"}"#, "user").as_deref(),
            Some("escaped key")
        );
    }

    #[test]
    fn escapes_are_decoded_so_header_checks_see_them() {
        assert_eq!(
            get(r#"{"name":"a\r\nX-Admin: 1"}"#, "name").as_deref(),
            Some("a\r\nX-Admin: 1")
        );
        assert_eq!(
            get(r#"{"name":"Bj\u00f8rn"}"#, "name").as_deref(),
            Some("Bjørn")
        );
    }

    #[test]
    fn repeated_keys_are_all_seen() {
        let b = br#"{"exp":1,"sub":"a","e\u0078p":2,"exp":3.5}"#;
        let c = Claims::parse(b).unwrap();
        assert_eq!(c.raw(b, "exp"), Some("1"));
        assert_eq!(c.raw_all(b, "exp"), ["1", "2", "3.5"]);
        assert_eq!(c.raw_all(b, "sub").len(), 1);
        assert!(c.raw_all(b, "nbf").is_empty());
    }

    #[test]
    fn non_objects_are_refused() {
        assert_eq!(
            Claims::parse(b"eyJhbGciOi.x.y").err(),
            Some(ClaimsError::NotJson)
        );
        assert_eq!(Claims::parse(b"{\"a\":").err(), Some(ClaimsError::NotJson));
        assert_eq!(
            Claims::parse(b"{\"a\":1} x").err(),
            Some(ClaimsError::NotJson)
        );
        assert_eq!(
            Claims::parse(b"{\"a\":1,}").err(),
            Some(ClaimsError::NotJson)
        );
        assert_eq!(
            Claims::parse(b"[1,2]").err(),
            Some(ClaimsError::NotAnObject)
        );
        assert_eq!(
            Claims::parse(b"\"s\"").err(),
            Some(ClaimsError::NotAnObject)
        );
        assert_eq!(Claims::parse(b"12").err(), Some(ClaimsError::NotAnObject));
        assert_eq!(
            Claims::parse(b"{\"a\":\"\xff\xfe\"}").err(),
            Some(ClaimsError::NotJson)
        );
        assert_eq!(Claims::parse(b"").err(), Some(ClaimsError::NotJson));
        assert!(Claims::parse(b" {} ").is_ok());
    }
}
