//! Claim extraction for `$identity_claim_NAME`: top-level fields of a JSON object body.

use serde_json::{Map, Value};

/// Why a body offers no claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("the user service body is not valid JSON")]
    NotJson,
    #[error("the user service body is JSON but not an object")]
    NotAnObject,
}

/// The parsed top-level fields of an identity body.
#[derive(Debug)]
pub struct Claims(Map<String, Value>);

impl Claims {
    /// Parses a body; it must be a UTF-8 JSON object (RFC 8259).
    pub fn parse(body: &[u8]) -> Result<Self, ClaimsError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Claims(map)),
            Ok(_) => Err(ClaimsError::NotAnObject),
            Err(_) => Err(ClaimsError::NotJson),
        }
    }

    /// The text of claim `name`, or `None` when absent or null.
    /// nginx lowercases variable names, so an exact match is tried first and then a
    /// case-insensitive one (`$identity_claim_userid` finds `userId`).
    pub fn get(&self, name: &str) -> Option<String> {
        let value = self.0.get(name).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })?;
        claim_text(value)
    }
}

/// Strings as they are, numbers as written, booleans as `true`/`false`, arrays of
/// scalars joined with commas, anything else as compact JSON; null is absent.
fn claim_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) if items.iter().all(is_scalar) => Some(
            items
                .iter()
                .filter_map(claim_text)
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Array(_) | Value::Object(_) => serde_json::to_string(value).ok(),
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(body: &str) -> Claims {
        Claims::parse(body.as_bytes()).expect("test body is a JSON object")
    }

    #[test]
    fn scalars_render_as_text() {
        let c = claims(
            r#"{"id":"alice","n":42,"big":12345678901234567890123,"f":1.50,"ok":true,"no":false,"nil":null}"#,
        );
        assert_eq!(c.get("id").as_deref(), Some("alice"));
        assert_eq!(c.get("n").as_deref(), Some("42"));
        assert_eq!(c.get("big").as_deref(), Some("12345678901234567890123"));
        assert_eq!(c.get("f").as_deref(), Some("1.50"));
        assert_eq!(c.get("ok").as_deref(), Some("true"));
        assert_eq!(c.get("no").as_deref(), Some("false"));
        assert_eq!(c.get("nil"), None);
        assert_eq!(c.get("missing"), None);
    }

    #[test]
    fn arrays_and_objects() {
        let c = claims(
            r#"{"roles":["admin","dev",3,true],"org":{"b":1,"a":[1,2]},"mixed":[{"x":1},2],"empty":[]}"#,
        );
        assert_eq!(c.get("roles").as_deref(), Some("admin,dev,3,true"));
        assert_eq!(c.get("org").as_deref(), Some(r#"{"b":1,"a":[1,2]}"#));
        assert_eq!(c.get("mixed").as_deref(), Some(r#"[{"x":1},2]"#));
        assert_eq!(c.get("empty").as_deref(), Some(""));
    }

    #[test]
    fn names_fall_back_to_case_insensitive() {
        let c = claims(r#"{"userId":"u1","userid":"exact"}"#);
        assert_eq!(c.get("userid").as_deref(), Some("exact"));
        let c = claims(r#"{"userId":"u1"}"#);
        assert_eq!(c.get("userid").as_deref(), Some("u1"));
    }

    #[test]
    fn escapes_are_decoded_so_header_checks_see_them() {
        let c = claims(r#"{"name":"a\r\nX-Admin: 1"}"#);
        assert_eq!(c.get("name").as_deref(), Some("a\r\nX-Admin: 1"));
    }

    #[test]
    fn non_objects_are_refused() {
        assert_eq!(
            Claims::parse(b"eyJhbGciOi.x.y").err(),
            Some(ClaimsError::NotJson)
        );
        assert_eq!(Claims::parse(b"{\"a\":").err(), Some(ClaimsError::NotJson));
        assert_eq!(
            Claims::parse(b"[1,2]").err(),
            Some(ClaimsError::NotAnObject)
        );
        assert_eq!(
            Claims::parse(b"\"s\"").err(),
            Some(ClaimsError::NotAnObject)
        );
        assert_eq!(
            Claims::parse(b"{\"a\":\"\xff\xfe\"}").err(),
            Some(ClaimsError::NotJson)
        );
        assert_eq!(Claims::parse(b"").err(), Some(ClaimsError::NotJson));
    }
}
