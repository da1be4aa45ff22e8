//! Identity assertions: a compact JWS (RFC 7515), ES256, that tells an upstream which
//! identity the gateway accepted, so that it need not trust a bare header.
//!
//! ```text
//! header  = {"alg":"ES256","typ":"JWT","kid":<the signing key's RFC 7638 thumbprint>}
//! payload = {"iss":…,"sub":…,"aud":…,"iat":now,"exp":now+ttl, <identity claims>…}
//! ```
//!
//! `sub` is the identity's `sub`, else its `id` (a non-empty string, or a number as
//! written), always as a string; with neither the payload has no `sub`. `aud` is there
//! when configured. Then the identity's top-level claims (the named ones, or all), JSON
//! types and number text kept, in the identity's order (or the list's); absent or null
//! ones are left out, a repeated one counts once (its first copy, as `$identity_claim_`
//! does), and the registered claims (`REGISTERED`) are never copied from the identity.

use core::num::NonZeroU32;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::assertion_key::AssertionKey;

pub const DEFAULT_ISSUER: &str = "ngx-identity";
pub const DEFAULT_TTL: NonZeroU32 = match NonZeroU32::new(60) {
    Some(ttl) => ttl,
    None => unreachable!(),
};
/// The claims only the gateway sets (RFC 7519 section 4.1).
pub const REGISTERED: [&str; 7] = ["iss", "sub", "aud", "iat", "exp", "nbf", "jti"];

pub fn is_registered(name: &str) -> bool {
    REGISTERED.contains(&name)
}

/// What one `identity_assertion` directive asks for (its header name stays in the skin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionSpec {
    pub issuer: String,
    pub audience: Option<String>,
    /// Seconds from `iat` to `exp`; zero would make an assertion born expired.
    pub ttl: NonZeroU32,
    /// The identity claims to copy; `None` copies them all.
    pub claims: Option<Vec<String>>,
}

impl Default for AssertionSpec {
    fn default() -> Self {
        AssertionSpec {
            issuer: DEFAULT_ISSUER.to_string(),
            audience: None,
            ttl: DEFAULT_TTL,
            claims: None,
        }
    }
}

/// Why a `claims=` list is refused (at `nginx -t`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("claims= holds an empty name")]
    EmptyName,
    #[error(
        "claims= names \"{0}\", which the gateway sets itself (iss, sub, aud, iat, exp, nbf, jti)"
    )]
    Registered(String),
}

/// Parses the value of `claims=`: names separated by commas. A registered claim is refused
/// rather than silently never copied.
pub fn parse_claim_list(list: &str) -> Result<Vec<String>, SpecError> {
    list.split(',')
        .map(|name| {
            if name.is_empty() {
                Err(SpecError::EmptyName)
            } else if is_registered(name) {
                Err(SpecError::Registered(name.to_string()))
            } else {
                Ok(name.to_string())
            }
        })
        .collect()
}

/// Why no assertion could be made for an identity: the request takes the
/// `identity_on_error` path, as when a claim variable needs an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("the identity is not valid JSON")]
    NotJson,
    #[error("the identity is JSON but not an object")]
    NotAnObject,
    #[error("signing failed")]
    Sign,
    #[error("the identity expires before an assertion could")]
    Expired,
}

/// A signed assertion and what deciding on its reuse needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// The compact JWS, ASCII: the header value.
    pub token: String,
    /// The kid of the key that signed it.
    pub kid: String,
    pub iat: i64,
    pub exp: i64,
}

impl Assertion {
    /// Whether this assertion may be sent again at `now` instead of signing a new one: the
    /// same key still signs (a reload may have rotated keys) and `reusable` holds. It must
    /// also have been made for the same identity and the same `AssertionSpec`.
    pub fn reusable_with(&self, signer: &AssertionKey, now: i64) -> bool {
        self.kid == signer.kid() && reusable(self.iat, self.exp, now)
    }
}

/// The reuse rule: an assertion issued at `iat` and expiring at `exp` may be reused at
/// `now` until it has less than half its life left, and never when `now` lies before its
/// `iat` (a clock stepped back) or at or after its `exp`. A verifier thus always gets at
/// least half the configured ttl, and at most half the assertions are signed anew.
pub fn reusable(iat: i64, exp: i64, now: i64) -> bool {
    let life = exp.saturating_sub(iat);
    let left = exp.saturating_sub(now);
    now >= iat && left > 0 && left.saturating_mul(2) >= life
}

/// Signs an assertion for `identity` (the accepted identity body) at time `now` (seconds
/// since 1970) with `key`.
pub fn sign(
    key: &AssertionKey,
    spec: &AssertionSpec,
    identity: &[u8],
    now: i64,
) -> Result<Assertion, AssertionError> {
    let mut members = serde_json::from_slice::<Members>(identity)
        .map_err(|e| {
            if e.is_data() {
                AssertionError::NotAnObject
            } else {
                AssertionError::NotJson
            }
        })?
        .0;
    let exp = now.saturating_add(i64::from(spec.ttl.get()));
    let mut payload = Map::new();
    payload.insert("iss".into(), spec.issuer.as_str().into());
    if let Some(sub) = subject(&members) {
        payload.insert("sub".into(), sub.into());
    }
    if let Some(aud) = &spec.audience {
        payload.insert("aud".into(), aud.as_str().into());
    }
    payload.insert("iat".into(), now.into());
    payload.insert("exp".into(), exp.into());
    let mut copy = |name: String, value: Value| {
        if !value.is_null() && !is_registered(&name) {
            // The first copy of a repeated claim wins; later ones find it taken.
            payload.entry(name).or_insert(value);
        }
    };
    match &spec.claims {
        None => members.into_iter().for_each(|(n, v)| copy(n, v)),
        Some(names) => {
            for name in names {
                if let Some((_, value)) = members.iter_mut().find(|(n, _)| n == name) {
                    copy(name.clone(), value.take());
                }
            }
        }
    }
    let signing_input = format!(
        "{}.{}",
        key.header_b64(),
        URL_SAFE_NO_PAD.encode(Value::Object(payload).to_string())
    );
    // The FIXED algorithm gives JWS ES256's 64-byte r || s (RFC 7518 section 3.4), not DER.
    let signature = key
        .key_pair()
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .map_err(|_| AssertionError::Sign)?;
    let token = format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    );
    Ok(Assertion {
        token,
        kid: key.kid().to_string(),
        iat: now,
        exp,
    })
}

/// The identity's `sub`, else its `id`: a non-empty string, or a number as written.
fn subject(members: &[(String, Value)]) -> Option<String> {
    ["sub", "id"]
        .iter()
        .find_map(|name| match &members.iter().find(|(n, _)| n == name)?.1 {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

/// A JSON object's members in order, repeated names kept (a `Map` keeps only the last).
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        de.deserialize_map(MembersVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assertion_key::tests::{key, KID, PKCS8, PKCS8_B};
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::{Signature, VerifyingKey};
    use ring::signature::KeyPair;

    const NOW: i64 = 1_700_000_000;

    fn decode(part: &str) -> String {
        String::from_utf8(URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// Checks a token's signature with p256, a library other than the signer's (ring).
    fn check_signature(k: &AssertionKey, token: &str) {
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        let public = VerifyingKey::from_sec1_bytes(k.key_pair().public_key().as_ref()).unwrap();
        public.verify(input.as_bytes(), &sig).unwrap();
        assert_eq!(
            public.to_encoded_point(false).as_bytes(),
            k.key_pair().public_key().as_ref()
        );
    }

    /// Signs and checks the signature; returns the payload JSON text.
    fn payload(spec: &AssertionSpec, identity: &str) -> String {
        let k = key(PKCS8);
        let a = sign(&k, spec, identity.as_bytes(), NOW).unwrap();
        let parts: Vec<&str> = a.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        check_signature(&k, &a.token);
        decode(parts[1])
    }

    #[test]
    fn vector() {
        let spec = AssertionSpec {
            audience: Some("orders".into()),
            ..Default::default()
        };
        let identity = br#"{"id":42,"name":"Ann","roles":["a","b"],"exp":1,"iss":"evil","sub":null,
            "nbf":5,"jti":"x","aud":"y","iat":3,"email":null,"n":1.50,"o":{"k":[1, true]}}"#;
        let a = sign(&key(PKCS8), &spec, identity, NOW).unwrap();
        let parts: Vec<&str> = a.token.split('.').collect();
        assert_eq!(
            decode(parts[0]),
            format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{KID}"}}"#)
        );
        assert_eq!(
            decode(parts[1]),
            r#"{"iss":"ngx-identity","sub":"42","aud":"orders","iat":1700000000,"exp":1700000060,"id":42,"name":"Ann","roles":["a","b"],"n":1.50,"o":{"k":[1,true]}}"#
        );
        assert_eq!((a.iat, a.exp, a.kid.as_str()), (NOW, NOW + 60, KID));
        check_signature(&key(PKCS8), &a.token);
    }

    #[test]
    fn named_claims_keep_the_list_order_and_skip_absent_null_and_registered() {
        let spec = AssertionSpec {
            issuer: "gw \"1\" é".into(),
            ttl: NonZeroU32::new(300).unwrap(),
            claims: Some(vec![
                "roles".into(),
                "missing".into(),
                "email".into(),
                "exp".into(),
                "id".into(),
                "roles".into(),
            ]),
            ..Default::default()
        };
        assert_eq!(
            payload(
                &spec,
                r#"{"id":"u1","email":null,"exp":9,"roles":["admin"],"id":"u2","x":1}"#
            ),
            r#"{"iss":"gw \"1\" é","sub":"u1","iat":1700000000,"exp":1700000300,"roles":["admin"],"id":"u1"}"#
        );
    }

    #[test]
    fn subject_is_sub_else_id_as_a_string() {
        let spec = AssertionSpec {
            claims: Some(vec![]),
            ..Default::default()
        };
        let sub = |identity: &str| {
            let p: Value = serde_json::from_str(&payload(&spec, identity)).unwrap();
            p.get("sub").map(|s| s.as_str().unwrap().to_string())
        };
        assert_eq!(sub(r#"{"sub":"s","id":"i"}"#).as_deref(), Some("s"));
        assert_eq!(sub(r#"{"id":"i","sub":"s"}"#).as_deref(), Some("s"));
        assert_eq!(
            sub(r#"{"sub":12345678901234567890,"id":"i"}"#).as_deref(),
            Some("12345678901234567890")
        );
        assert_eq!(sub(r#"{"sub":null,"id":7}"#).as_deref(), Some("7"));
        assert_eq!(sub(r#"{"sub":"","id":7}"#).as_deref(), Some("7"));
        assert_eq!(sub(r#"{"sub":{"a":1},"id":true}"#), None);
        assert_eq!(
            sub(r#"{"sub":"first","sub":"second"}"#).as_deref(),
            Some("first")
        );
        assert_eq!(sub(r#"{}"#), None);
    }

    #[test]
    fn only_objects_make_assertions() {
        let k = key(PKCS8);
        let spec = AssertionSpec::default();
        for body in ["[1]", "\"s\"", "42", "null", "true"] {
            assert_eq!(
                sign(&k, &spec, body.as_bytes(), NOW),
                Err(AssertionError::NotAnObject),
                "{body}"
            );
        }
        for body in [
            "",
            "{",
            "{\"a\":1}x",
            "{\"a\":1,}",
            "\u{feff}{}",
            "{\"a\":\"\\ud800\"}",
        ] {
            assert_eq!(
                sign(&k, &spec, body.as_bytes(), NOW),
                Err(AssertionError::NotJson),
                "{body}"
            );
        }
        assert_eq!(
            sign(&k, &spec, b"{\"a\":\"\xff\"}", NOW),
            Err(AssertionError::NotJson)
        );
        let deep = "[".repeat(100_000);
        assert_eq!(
            sign(&k, &spec, format!("{{\"a\":{deep}").as_bytes(), NOW),
            Err(AssertionError::NotJson)
        );
    }

    #[test]
    fn reuse_until_half_the_life_is_left() {
        // ttl 60 from 1000: reusable through 1030, signed anew from 1031.
        assert!(reusable(1000, 1060, 1000));
        assert!(reusable(1000, 1060, 1030));
        assert!(!reusable(1000, 1060, 1031));
        assert!(!reusable(1000, 1060, 1060));
        assert!(!reusable(1000, 1060, 2000));
        assert!(!reusable(1000, 1060, 999), "the clock went back");
        // The shortest life: only the second it was made in.
        assert!(reusable(1000, 1001, 1000));
        assert!(!reusable(1000, 1001, 1001));
        // Extreme times saturate instead of overflowing.
        assert!(reusable(i64::MIN, i64::MAX, 0));
        assert!(!reusable(i64::MAX, i64::MIN, i64::MAX));

        let (a, b) = (key(PKCS8), key(PKCS8_B));
        let asserted = sign(&a, &AssertionSpec::default(), b"{}", 1000).unwrap();
        assert!(asserted.reusable_with(&a, 1030));
        assert!(!asserted.reusable_with(&a, 1031));
        assert!(!asserted.reusable_with(&b, 1000), "another key signs now");
    }

    #[test]
    fn claim_lists() {
        assert_eq!(parse_claim_list("id,roles").unwrap(), ["id", "roles"]);
        assert_eq!(parse_claim_list("id,,roles"), Err(SpecError::EmptyName));
        assert_eq!(parse_claim_list(""), Err(SpecError::EmptyName));
        for r in REGISTERED {
            assert_eq!(
                parse_claim_list(&format!("id,{r}")),
                Err(SpecError::Registered(r.into()))
            );
        }
        assert!(!is_registered("Sub"));
    }
}
