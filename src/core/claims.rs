//! Claim extraction for `$identity_claim_NAME`: top-level fields of a JSON object body.
//!
//! Parsing records where each top-level value lies in the body instead of building a
//! tree, and a claim's text is taken from its own bytes only when a variable asks for it.
//! Numbers keep their exact text this way. A body is read twice on a cache hit's first
//! claim (UTF-8, then JSON), so the usual body takes a fast path (`scan`): one pass, no
//! allocation, the spans kept in place; anything it is not sure of goes through
//! serde_json, which is also the reference the fuzz target compares the fast path with.
//!
//! A cache entry keeps what parsing found (`Claims::index`), so a cache hit rebuilds
//! its claims from a few lengths (`Index::claims`) instead of reading the JSON again.

use std::borrow::Cow;

use core::fmt;
use core::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

mod scan;

/// Why a body offers no claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("the user service body is not valid JSON")]
    NotJson,
    #[error("the user service body is JSON but not an object")]
    NotAnObject,
}

/// What `Claims::parse` gives for a body.
pub type Parsed = Result<Claims, ClaimsError>;

/// The kinds of a claims index (`Claims::index`): the body's claims were not recorded
/// (parse it when a claim is read), the body is refused and why, or `FIELDS + n`: the fast
/// path's `n` fields, each as `INDEX_FIELD_LEN` bytes: from the end of the previous value
/// (the body's start for the first) to the key's text, the key's length, from the key's
/// end to the value, each a byte, and the value's length (two bytes, little-endian). The
/// gaps are JSON punctuation and whitespace; with them a hit finds every field by
/// addition, reading only the bytes between fields to check them.
const INDEX_NONE: u8 = 0;
const INDEX_NOT_JSON: u8 = 1;
const INDEX_NOT_AN_OBJECT: u8 = 2;
const INDEX_FIELDS: u8 = 0x10;
const INDEX_FIELD_LEN: usize = 5;

/// A top-level key: where it lies in the body, or its text when it held escapes.
#[derive(Debug)]
enum Key {
    Span(Range<usize>),
    Owned(String),
}

/// The top-level fields of an identity body, as spans of that body.
#[derive(Debug)]
pub struct Claims {
    fields: Fields,
}

// The fast path's spans stay in place (no allocation per request): the size is the point.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Fields {
    /// From the fast path: keys without escapes, at most `scan::INLINE` of them.
    Spans(scan::Spans),
    /// From serde_json.
    General(Vec<(Key, Range<usize>)>),
}

impl Claims {
    /// Parses a body; it must be a UTF-8 JSON object (RFC 8259).
    pub fn parse(body: &[u8]) -> Result<Self, ClaimsError> {
        let text = core::str::from_utf8(body).map_err(|_| ClaimsError::NotJson)?;
        match scan::scan(body) {
            Some(spans) => Ok(Claims {
                fields: Fields::Spans(spans),
            }),
            None => parse_with_serde(text),
        }
    }

    fn len(&self) -> usize {
        match &self.fields {
            Fields::Spans(s) => s.len,
            Fields::General(v) => v.len(),
        }
    }

    /// Field `i`'s key text and value span; an empty key when `body` is not the body
    /// parsed.
    fn field<'a>(&'a self, body: &'a [u8], i: usize) -> (&'a [u8], Range<usize>) {
        match &self.fields {
            Fields::Spans(s) => {
                let f = s.spans.get(i).copied().unwrap_or_default();
                let key = body.get(f.key.0 as usize..f.key.1 as usize);
                (
                    key.unwrap_or_default(),
                    f.value.0 as usize..f.value.1 as usize,
                )
            }
            Fields::General(v) => match v.get(i) {
                Some((Key::Span(r), value)) => {
                    (body.get(r.clone()).unwrap_or_default(), value.clone())
                }
                Some((Key::Owned(k), value)) => (k.as_bytes(), value.clone()),
                None => (b"", 0..0),
            },
        }
    }

    /// The raw JSON text of field `i`'s value.
    fn value<'a>(&self, body: &'a [u8], i: usize) -> Option<&'a str> {
        let (_, range) = self.field(body, i);
        core::str::from_utf8(body.get(range)?).ok()
    }

    /// The raw JSON text of the top-level field called exactly `name` (the first, if the
    /// object repeats it).
    pub fn raw<'a>(&self, body: &'a [u8], name: &str) -> Option<&'a str> {
        let i = (0..self.len()).find(|&i| self.field(body, i).0 == name.as_bytes())?;
        self.value(body, i)
    }

    /// The raw JSON text of every top-level field called exactly `name` (escapes in the
    /// key decoded), in order: JSON allows a repeated key, and readers differ on which
    /// copy wins, so a check that must be unambiguous looks at all of them.
    pub fn raw_all<'a>(&self, body: &'a [u8], name: &str) -> Vec<&'a str> {
        self.raw_each(body, name).collect()
    }

    /// `raw_all` as an iterator: nothing allocated (a sealed cookie's times are read
    /// this way on every request). Claims come from a body that is UTF-8 as a whole;
    /// each value is checked again as it is read.
    pub fn raw_each<'s, 'b: 's>(
        &'s self,
        body: &'b [u8],
        name: &'s str,
    ) -> impl Iterator<Item = &'b str> + use<'s, 'b> {
        (0..self.len())
            .filter(move |&i| self.field(body, i).0 == name.as_bytes())
            .filter_map(move |i| self.value(body, i))
    }

    /// The index of claim `name`: an exact match first, then a case-insensitive one.
    fn find(&self, body: &[u8], name: &str) -> Option<usize> {
        let name = name.as_bytes();
        (0..self.len())
            .find(|&i| self.field(body, i).0 == name)
            .or_else(|| (0..self.len()).find(|&i| self.field(body, i).0.eq_ignore_ascii_case(name)))
    }

    /// The text of claim `name` in `body` (the body `parse` was given), or `None` when
    /// absent or null. nginx lowercases variable names, so an exact match is tried first
    /// and then a case-insensitive one (`$identity_claim_userid` finds `userId`).
    pub fn get(&self, body: &[u8], name: &str) -> Option<String> {
        match self.text(body, name)? {
            Cow::Borrowed(text) => core::str::from_utf8(text).ok().map(str::to_string),
            Cow::Owned(text) => String::from_utf8(text).ok(),
        }
    }

    /// `get`, borrowing from `body` where the text is there as it stands: a string
    /// without escapes, a number, a boolean. Decoded strings, arrays and objects are
    /// owned.
    ///
    /// As bytes: the claims come from a body that is UTF-8 as a whole, so what is
    /// borrowed is UTF-8 without a second check on every read (what is decoded is
    /// checked as it is decoded).
    pub fn text<'a>(&self, body: &'a [u8], name: &str) -> Option<Cow<'a, [u8]>> {
        let (_, range) = self.field(body, self.find(body, name)?);
        let raw = body.get(range)?;
        match raw {
            [b'"', inner @ .., b'"']
                if inner.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\') =>
            {
                Some(Cow::Borrowed(inner))
            }
            [b'"' | b'[' | b'{' | b'n', ..] | [] => {
                let raw = core::str::from_utf8(raw).ok()?;
                claim_text_reference(raw).map(|t| Cow::Owned(t.into_bytes()))
            }
            // Numbers and booleans (JSON's ASCII): their own text.
            _ => Some(Cow::Borrowed(raw)),
        }
    }

    /// Appends to `out` the index of `body`'s claims, which `Index::take` reads back and
    /// `Index::claims` turns into what `parse` gives for `body`, without parsing: the
    /// fast path's fields (`INDEX_FIELD_LEN` bytes each), or why the body is refused. A
    /// body the fast path does not take, or whose fields do not fit the index's bytes
    /// (a key over 255 bytes, a value over 65,535, 255 bytes of whitespace), is recorded
    /// as not indexed.
    pub fn index(body: &[u8], out: &mut Vec<u8>) {
        let spans = match Claims::parse(body) {
            Err(ClaimsError::NotJson) => return out.push(INDEX_NOT_JSON),
            Err(ClaimsError::NotAnObject) => return out.push(INDEX_NOT_AN_OBJECT),
            Ok(Claims {
                fields: Fields::Spans(spans),
            }) => spans,
            Ok(_) => return out.push(INDEX_NONE),
        };
        let fields = spans.spans.get(..spans.len).unwrap_or_default();
        let mut end = 0;
        let mut record = Vec::with_capacity(fields.len() * INDEX_FIELD_LEN);
        for f in fields {
            let byte = |from: u32, to: u32| u8::try_from(to.checked_sub(from)?).ok();
            let (Some(key_gap), Some(key), Some(value_gap), Some(value)) = (
                byte(end, f.key.0),
                byte(f.key.0, f.key.1),
                byte(f.key.1, f.value.0),
                f.value
                    .1
                    .checked_sub(f.value.0)
                    .and_then(|l| u16::try_from(l).ok()),
            ) else {
                return out.push(INDEX_NONE);
            };
            record.extend_from_slice(&[key_gap, key, value_gap]);
            record.extend_from_slice(&value.to_le_bytes());
            end = f.value.1;
        }
        // At most `scan::INLINE` fields, so the kind stays a byte.
        out.push(INDEX_FIELDS + fields.len().min(scan::INLINE) as u8);
        out.extend_from_slice(&record);
    }
}

/// A claims index read from a cache entry (`Claims::index`), before it is checked
/// against the body it was made from.
#[derive(Debug, Clone, Copy)]
pub struct Index<'a> {
    kind: u8,
    fields: &'a [u8],
}

impl<'a> Index<'a> {
    /// Reads the index at the start of `rest` and moves past it; `None` when `rest` does
    /// not start with one.
    pub fn take(rest: &mut &'a [u8]) -> Option<Self> {
        let (&kind, tail) = rest.split_first()?;
        let n = match kind {
            INDEX_NONE | INDEX_NOT_JSON | INDEX_NOT_AN_OBJECT => 0,
            k if (INDEX_FIELDS..=INDEX_FIELDS + scan::INLINE as u8).contains(&k) => {
                usize::from(k - INDEX_FIELDS)
            }
            _ => return None,
        };
        let len = n * INDEX_FIELD_LEN;
        let fields = tail.get(..len)?;
        *rest = tail.get(len..)?;
        Some(Index { kind, fields })
    }

    /// What `Claims::parse(body)` gives, for the body the index was made from:
    /// `Some(None)` when the index recorded nothing (parse the body when a claim is
    /// read), `None` when the index does not fit `body` (it was not made from it).
    pub fn claims(&self, body: &[u8]) -> Option<Option<Parsed>> {
        match self.kind {
            INDEX_NONE => Some(None),
            INDEX_NOT_JSON => Some(Some(Err(ClaimsError::NotJson))),
            INDEX_NOT_AN_OBJECT => Some(Some(Err(ClaimsError::NotAnObject))),
            _ => Some(Some(Ok(Claims {
                fields: Fields::Spans(self.spans(body)?),
            }))),
        }
    }

    /// The fields' spans in `body`, each checked to lie inside it, in order, with its key
    /// between quotes, and between them only the JSON punctuation and whitespace that
    /// `scan` found there; so a record of another body, or cut short, is refused.
    fn spans(&self, body: &[u8]) -> Option<scan::Spans> {
        // Offsets fit a span's u32 once they are within the body.
        u32::try_from(body.len()).ok()?;
        let mut out = scan::Spans {
            len: 0,
            spans: [scan::Span::default(); scan::INLINE],
        };
        let mut end = 0;
        // Before the first key: `{`, after each value but the last: `,`.
        let mut separator = b'{';
        for (f, slot) in self
            .fields
            .chunks_exact(INDEX_FIELD_LEN)
            .zip(out.spans.iter_mut())
        {
            let &[key_gap, key, value_gap, v0, v1] = f else {
                return None;
            };
            let key_start = end + usize::from(key_gap);
            let key_end = key_start + usize::from(key);
            let value_start = key_end + usize::from(value_gap);
            let value_end = value_start + usize::from(u16::from_le_bytes([v0, v1]));
            // Keys follow `{"` or `,"`, values `":`: each gap is at least 2 bytes.
            if key_gap < 2
                || value_gap < 2
                || value_end <= value_start
                || !punctuation(body, end, key_start - 1, separator)
                || body.get(key_start - 1) != Some(&b'"')
                || body.get(key_end) != Some(&b'"')
                || !punctuation(body, key_end + 1, value_start, b':')
            {
                return None;
            }
            *slot = scan::Span {
                key: (key_start as u32, key_end as u32),
                value: (value_start as u32, value_end as u32),
            };
            out.len += 1;
            end = value_end;
            separator = b',';
        }
        let closed = if out.len == 0 {
            // `{}`: the brace opens after whitespace only.
            let open = scan::ws(body, 0);
            body.get(open) == Some(&b'{') && punctuation(body, open + 1, body.len(), b'}')
        } else {
            punctuation(body, end, body.len(), b'}')
        };
        closed.then_some(out)
    }
}

/// Whether `b[from..to]` is `c` with nothing but JSON whitespace around it.
fn punctuation(b: &[u8], from: usize, to: usize, c: u8) -> bool {
    if to == from + 1 {
        // The usual case: no whitespace.
        return b.get(from) == Some(&c);
    }
    let at = scan::ws(b, from);
    at < to && b.get(at) == Some(&c) && scan::ws(b, at + 1) == to
}

/// The serde_json path of `Claims::parse` (the fast path's reference) and `Claims::text`'s
/// reference: the differential fuzz target compares the fast paths with them.
#[doc(hidden)]
pub mod reference {
    use super::*;

    /// `Claims::parse` through serde_json only.
    pub fn parse(body: &[u8]) -> Result<Claims, ClaimsError> {
        let text = core::str::from_utf8(body).map_err(|_| ClaimsError::NotJson)?;
        parse_with_serde(text)
    }

    /// `Claims::get` with serde_json decoding every string.
    pub fn get(claims: &Claims, body: &[u8], name: &str) -> Option<String> {
        claim_text_reference(claims.value(body, claims.find(body, name)?)?)
    }

    /// Every field as (decoded key, raw value), in order.
    pub fn fields(claims: &Claims, body: &[u8]) -> Vec<(Vec<u8>, Option<String>)> {
        (0..claims.len())
            .map(|i| {
                let (k, _) = claims.field(body, i);
                (k.to_vec(), claims.value(body, i).map(str::to_string))
            })
            .collect()
    }

    /// Whether `parse` took the fast path.
    pub fn is_fast(claims: &Claims) -> bool {
        matches!(claims.fields, Fields::Spans(_))
    }
}

fn parse_with_serde(text: &str) -> Result<Claims, ClaimsError> {
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
    Ok(Claims {
        fields: Fields::General(fields),
    })
}

/// Strings as they are, numbers as written, booleans as `true`/`false`, arrays of
/// scalars joined with commas, anything else as compact JSON; null is absent.
fn claim_text_reference(raw: &str) -> Option<String> {
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
                        .filter_map(|i| claim_text_reference(i.get()))
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

    #[test]
    fn the_fast_path_agrees_with_serde_json() {
        let bodies: [&[u8]; 18] = [
            br#"{"id":"bench-user","name":"Bench User","roles":["admin","dev"],"pad":"xxxxxxxxxxxxxxxx"}"#,
            br#" {"a" : 1 ,"b":[1,{"c":"\u00e9"}],"d":{"e":[]},"f":-0.5E-3} "#,
            br#"{"id":"x\"y","id":"second","ID":"case"}"#,
            br#"{"s":"a\r\nb","t":"\ud800","u":"tab\tthere","v":"\/"}"#,
            br#"{"e\u0078p":1,"exp":2}"#,
            br#"{"n":01}"#,
            br#"{"n":1.}"#,
            br#"{"n":-}"#,
            br#"{"a":[1,]}"#,
            br#"{"a":1,}"#,
            br#"[1,2"#,
            br#"{"a":"\q"}"#,
            br#"{"a":"x"}  y"#,
            b"{\"a\":\"ctl\x01\"}",
            b"{\"\xc3\xa9\":\"\xc3\xa9\"}",
            br#"true"#,
            br#"-"#,
            br#"{"a":{"b":{"c":[[[]]]}},"z":"\u0041"}"#,
        ];
        for body in bodies {
            let fast = Claims::parse(body);
            let slow = reference::parse(body);
            match (&fast, &slow) {
                (Ok(f), Ok(s)) => {
                    assert_eq!(reference::fields(f, body), reference::fields(s, body));
                    for name in ["id", "ID", "a", "s", "t", "u", "v", "exp", "z", "é", "n"] {
                        assert_eq!(f.get(body, name), reference::get(s, body, name));
                        assert_eq!(f.raw_all(body, name), s.raw_all(body, name));
                    }
                }
                (Err(f), Err(s)) => assert_eq!(f, s),
                _ => panic!("{fast:?} vs {slow:?} for {body:?}"),
            }
        }
    }

    /// `Claims::index` of `body`, read back against `body`.
    fn indexed(body: &[u8]) -> Option<Option<Parsed>> {
        let mut record = Vec::new();
        Claims::index(body, &mut record);
        let mut rest = &record[..];
        let index = Index::take(&mut rest).expect("an index reads back");
        assert!(rest.is_empty(), "take reads the whole index");
        index.claims(body)
    }

    #[test]
    fn text_borrows_what_stands_in_the_body() {
        let b = br#"{"id":"alice","n":-4.5e2,"ok":true,"esc":"a\nb","roles":["x","y"],"o":{"k":1},"nil":null}"#;
        let c = Claims::parse(b).unwrap();
        for (name, want) in [("id", "alice"), ("n", "-4.5e2"), ("ok", "true")] {
            assert!(
                matches!(c.text(b, name), Some(Cow::Borrowed(t)) if t == want.as_bytes()),
                "{name}"
            );
        }
        for (name, want) in [("esc", "a\nb"), ("roles", "x,y"), ("o", r#"{"k":1}"#)] {
            assert!(
                matches!(c.text(b, name), Some(Cow::Owned(t)) if t == want.as_bytes()),
                "{name}"
            );
        }
        assert_eq!(c.text(b, "nil"), None);
        assert_eq!(c.text(b, "missing"), None);
    }

    #[test]
    fn an_index_gives_what_parsing_gives() {
        let bodies: [&[u8]; 14] = [
            br#"{"id":"bench-user","name":"Bench User","roles":["admin","dev"],"pad":"xxxx"}"#,
            br#" { "a" : 1 ,	"b":[1,{"c":"\u00e9"}] ,"d":{"e":[]},"f":-0.5E-3}
 "#,
            br#"{"id":"x\"y","id":"second","ID":"case","userId":"u"}"#,
            br#"{"s":"a\r\nb","t":"\ud800","v":"\/"}"#,
            br#"{}"#,
            br#"  {  }  "#,
            br#"{"e\u0078p":1,"exp":2}"#,
            br#"[1,2]"#,
            br#""s""#,
            br#"{"a":1,}"#,
            b"{\"a\":\"\xff\"}",
            b"",
            br#"{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15}"#,
            br#"{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16}"#,
        ];
        for body in bodies {
            match (Claims::parse(body), indexed(body)) {
                (Err(e), Some(Some(Err(i)))) => assert_eq!(e, i),
                (Ok(p), Some(Some(Ok(i)))) => {
                    assert!(reference::is_fast(&p) && reference::is_fast(&i));
                    assert_eq!(reference::fields(&i, body), reference::fields(&p, body));
                    for name in ["id", "ID", "userid", "a", "b", "f", "s", "t", "v", "k15"] {
                        assert_eq!(i.get(body, name), p.get(body, name), "{name}");
                    }
                }
                // Escaped keys and more than 16 fields take serde_json, when read.
                (Ok(p), Some(None)) => assert!(!reference::is_fast(&p)),
                (p, i) => panic!("{:?} vs {:?} for {body:?}", p, i),
            }
        }
        // A key too long for the index's byte: parsed when read.
        let long = format!(r#"{{"{}":1}}"#, "k".repeat(256));
        assert!(matches!(indexed(long.as_bytes()), Some(None)));
        let fits = format!(r#"{{"{}":1}}"#, "k".repeat(255));
        assert!(matches!(indexed(fits.as_bytes()), Some(Some(Ok(_)))));
    }

    #[test]
    fn an_index_that_does_not_fit_its_body_is_refused() {
        let body = br#"{"id":"alice","n":12,"roles":["a"]}"#;
        let mut record = Vec::new();
        Claims::index(body, &mut record);
        assert_eq!(record.len(), 1 + 3 * INDEX_FIELD_LEN);
        let read = |record: &[u8], body: &[u8]| {
            let mut rest = record;
            Index::take(&mut rest).and_then(|i| i.claims(body))
        };
        assert!(matches!(read(&record, body), Some(Some(Ok(_)))));
        // The same index against another body.
        assert!(read(&record, br#"{"id":"bob","n":12,"roles":["a"]}"#).is_none());
        assert!(read(&record, &body[..body.len() - 1]).is_none());
        // Each gap and length one off, and lengths past the body.
        for at in 1..record.len() {
            for delta in [1u8, 255] {
                let mut bad = record.clone();
                bad[at] = bad[at].wrapping_add(delta);
                assert!(read(&bad, body).is_none(), "byte {at} {delta:+}");
            }
        }
        // More fields than recorded, fewer, more than 16, an unknown kind.
        for kind in [
            INDEX_FIELDS + 2,
            INDEX_FIELDS + 4,
            INDEX_FIELDS + 17,
            3,
            0xff,
        ] {
            let mut bad = record.clone();
            bad[0] = kind;
            assert!(read(&bad, body).is_none(), "kind {kind:#x}");
        }
        // Whatever a single byte becomes, nothing is read outside the body.
        for at in 0..record.len() {
            for v in 0..=255u8 {
                let mut bad = record.clone();
                bad[at] = v;
                if let Some(Some(Ok(c))) = read(&bad, body) {
                    let _ = reference::fields(&c, body);
                    let _ = c.get(body, "id");
                }
            }
        }
    }

    #[test]
    fn an_ordinary_identity_takes_the_fast_path() {
        let b = br#"{"id":"bench-user","email":"a@b.c","n":3,"roles":["admin"],"o":{"x":null}}"#;
        let c = Claims::parse(b).unwrap();
        assert!(reference::is_fast(&c));
        assert_eq!(c.get(b, "id").as_deref(), Some("bench-user"));
        assert_eq!(c.get(b, "roles").as_deref(), Some("admin"));
        // An escaped key goes through serde_json, with the same answers.
        let b = br#"{"i\u0064":"x"}"#;
        let c = Claims::parse(b).unwrap();
        assert!(!reference::is_fast(&c));
        assert_eq!(c.get(b, "id").as_deref(), Some("x"));
    }
}
