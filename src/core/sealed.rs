//! Sealed session cookies: AES-256-GCM, opened in the gateway with no call at all.
//! Plain safe Rust with no nginx, shared by the module and the `identity-seal` tool.
//!
//! Format, version 1 (the README has it for implementers in other languages):
//!
//! ```text
//! cookie  = base64url-nopad( header || nonce || ciphertext || tag )
//! header  = 0x01 || len(kid) || kid          (kid: 1..=32 bytes of [A-Za-z0-9_-])
//! nonce   = 12 random bytes
//! key     = HKDF-SHA256(ikm = the key ring's 32-byte key, salt = "", info = "ngx-identity sealed v1")
//! aad     = header || cookie name
//! plain   = a UTF-8 JSON object with "exp" (and optionally "iat", "nbf"), seconds since 1970
//! ```
//!
//! `exp`, `iat` and `nbf` are JSON integers from 0 to `MAX_TIME` (no fraction, exponent,
//! sign or string), each at most once; an `iat` more than `IAT_SKEW` seconds ahead of the
//! gateway's clock is refused.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hkdf::Hkdf;
use sha2::Sha256;

use crate::claims::Claims;

pub const VERSION: u8 = 1;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Longer cookies are refused before any decoding (browsers cap a cookie near 4 KB).
pub const MAX_SEALED_LEN: usize = 4096;
const HKDF_INFO: &[u8] = b"ngx-identity sealed v1";
/// The latest time a time claim may hold: 9999-12-31T23:59:59Z. Anything beyond is not a
/// time but an attempt at "never".
pub const MAX_TIME: i64 = 253_402_300_799;
/// How far ahead of the gateway's clock an issuer's clock may run: an `iat` later than
/// now plus this is refused.
pub const IAT_SKEW: i64 = 60;

/// Why a key ring file is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    #[error("line {0}: expected \"<key id> <32 bytes in base64>\"")]
    Syntax(usize),
    #[error("line {0}: the key id must be 1 to 32 characters of A-Z, a-z, 0-9, '-' or '_'")]
    KeyId(usize),
    #[error("line {0}: the key is not base64 of exactly 32 bytes")]
    Key(usize),
    #[error("line {0}: key id \"{1}\" appears twice")]
    DuplicateId(usize, String),
    #[error("it holds no key")]
    Empty,
}

/// Why a sealed cookie did not open. Only ever logged at debug level: the client gets
/// the same answer whatever the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("too long")]
    TooLong,
    #[error("not unpadded base64url")]
    Base64,
    #[error("truncated")]
    Truncated,
    #[error("unknown version")]
    Version,
    #[error("unknown key id")]
    UnknownKey,
    #[error("authentication failed")]
    Tag,
    #[error("not a JSON object")]
    NotObject,
    #[error("no numeric exp")]
    NoExpiry,
    #[error("exp, iat or nbf is not an integer from 0 to 253402300799")]
    BadTime,
    #[error("exp, iat or nbf appears more than once")]
    DuplicateClaim,
    #[error("issued in the future")]
    IssuedInFuture,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("older than max_age")]
    TooOld,
}

/// One key of the ring: its id and its AES-256-GCM subkey (never the raw key).
pub struct SealKey {
    id: Vec<u8>,
    cipher: Aes256Gcm,
}

impl SealKey {
    pub fn new(id: &[u8], raw: &[u8; 32]) -> Self {
        let mut subkey = [0u8; 32];
        Hkdf::<Sha256>::new(None, raw)
            .expand(HKDF_INFO, &mut subkey)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        SealKey {
            id: id.to_vec(),
            cipher: Aes256Gcm::new(&subkey.into()),
        }
    }
}

/// The key ring: the first key seals, every key opens.
pub struct KeyRing {
    keys: Vec<SealKey>,
}

fn valid_key_id(id: &[u8]) -> bool {
    (1..=32).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl KeyRing {
    /// Parses a key ring file: one `<key id> <base64 of 32 bytes>` a line; blank lines
    /// and lines starting with `#` are ignored.
    pub fn parse(text: &str) -> Result<Self, KeyRingError> {
        let mut keys: Vec<SealKey> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_ascii_whitespace();
            let (Some(id), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(KeyRingError::Syntax(n));
            };
            if !valid_key_id(id.as_bytes()) {
                return Err(KeyRingError::KeyId(n));
            }
            let raw: [u8; 32] = STANDARD
                .decode(key)
                .or_else(|_| URL_SAFE_NO_PAD.decode(key))
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or(KeyRingError::Key(n))?;
            if keys.iter().any(|k| k.id == id.as_bytes()) {
                return Err(KeyRingError::DuplicateId(n, id.to_string()));
            }
            keys.push(SealKey::new(id.as_bytes(), &raw));
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        Ok(KeyRing { keys })
    }

    pub fn sealing_key(&self) -> &SealKey {
        &self.keys[0]
    }

    fn find(&self, id: &[u8]) -> Option<&SealKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

fn header(key_id: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(2 + key_id.len());
    h.push(VERSION);
    h.push(key_id.len() as u8);
    h.extend_from_slice(key_id);
    h
}

fn aad(header: &[u8], cookie_name: &[u8]) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(cookie_name);
    aad
}

/// Seals `plaintext` (a JSON object) for cookie `cookie_name` with the given nonce, which
/// must be random and never reused with the same key.
pub fn seal(
    key: &SealKey,
    cookie_name: &[u8],
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
) -> String {
    let header = header(&key.id);
    let aad = aad(&header, cookie_name);
    let sealed = key
        .cipher
        .encrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .expect("AES-GCM encrypts any message under 64 GiB");
    let mut out = header;
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    URL_SAFE_NO_PAD.encode(out)
}

/// Time limits a sealed identity must meet.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Seconds since 1970.
    pub now: i64,
    /// `max_age=`: an `iat` older than this, or, without `iat`, an `exp` further away than
    /// this, is refused.
    pub max_age: Option<i64>,
}

/// Opens a sealed cookie value: the JSON identity, if every check passes.
pub fn open(
    ring: &KeyRing,
    cookie_name: &[u8],
    value: &[u8],
    validity: Validity,
) -> Result<Vec<u8>, OpenError> {
    open_with_claims(ring, cookie_name, value, validity).map(|(plain, _)| plain)
}

/// `open`, also returning the identity's claims, parsed once for the checks and reused
/// by `$identity_claim_*`.
pub fn open_with_claims(
    ring: &KeyRing,
    cookie_name: &[u8],
    value: &[u8],
    validity: Validity,
) -> Result<(Vec<u8>, Claims), OpenError> {
    if value.len() > MAX_SEALED_LEN {
        return Err(OpenError::TooLong);
    }
    // Unpadded base64url only: '=' and the standard alphabet's '+' '/' are refused.
    let bytes = URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| OpenError::Base64)?;
    let (&version, rest) = bytes.split_first().ok_or(OpenError::Truncated)?;
    if version != VERSION {
        return Err(OpenError::Version);
    }
    let (&id_len, rest) = rest.split_first().ok_or(OpenError::Truncated)?;
    let id_len = id_len as usize;
    if rest.len() < id_len + NONCE_LEN + TAG_LEN {
        return Err(OpenError::Truncated);
    }
    let (id, rest) = rest.split_at(id_len);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let key = ring.find(id).ok_or(OpenError::UnknownKey)?;
    let header_len = 2 + id_len;
    let aad = aad(&bytes[..header_len], cookie_name);
    let plain = key
        .cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| OpenError::Tag)?;
    let claims = Claims::parse(&plain).map_err(|_| OpenError::NotObject)?;
    check_validity(&plain, &claims, validity)?;
    Ok((plain, claims))
}

/// The time claims of an identity, checked for shape only: `exp` present, and each of
/// `exp`, `iat`, `nbf` at most once and an integer from 0 to `MAX_TIME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub exp: i64,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
}

impl Times {
    pub fn read(plain: &[u8], claims: &Claims) -> Result<Self, OpenError> {
        Ok(Times {
            exp: time_claim(plain, claims, "exp")?.ok_or(OpenError::NoExpiry)?,
            iat: time_claim(plain, claims, "iat")?,
            nbf: time_claim(plain, claims, "nbf")?,
        })
    }
}

/// Checks an identity before it is sealed, as the gateway will when it opens it.
pub fn check_identity(plain: &[u8]) -> Result<Times, OpenError> {
    let claims = Claims::parse(plain).map_err(|_| OpenError::NotObject)?;
    Times::read(plain, &claims)
}

fn time_claim(plain: &[u8], claims: &Claims, name: &str) -> Result<Option<i64>, OpenError> {
    match claims.raw_all(plain, name)[..] {
        [] => Ok(None),
        [raw] => parse_time(raw).map(Some).ok_or(OpenError::BadTime),
        _ => Err(OpenError::DuplicateClaim),
    }
}

/// A JSON integer from 0 to `MAX_TIME`, nothing else: `1e300`, `1.5`, `-1`, `"1"` and a
/// number past 64 bits are all refused, never rounded or saturated into "never".
fn parse_time(raw: &str) -> Option<i64> {
    if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i64>().ok().filter(|t| *t <= MAX_TIME)
}

fn check_validity(plain: &[u8], claims: &Claims, validity: Validity) -> Result<(), OpenError> {
    let times = Times::read(plain, claims)?;
    let now = validity.now;
    if now >= times.exp {
        return Err(OpenError::Expired);
    }
    if times.nbf.is_some_and(|nbf| now < nbf) {
        return Err(OpenError::NotYetValid);
    }
    if times
        .iat
        .is_some_and(|iat| iat > now.saturating_add(IAT_SKEW))
    {
        return Err(OpenError::IssuedInFuture);
    }
    if let Some(max_age) = validity.max_age {
        // Both times are within 0..=MAX_TIME, so these differences cannot overflow.
        let too_old = match times.iat {
            Some(iat) => now.saturating_sub(iat) > max_age,
            None => times.exp.saturating_sub(now) > max_age,
        };
        if too_old {
            return Err(OpenError::TooOld);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!("../../t/sealed-vectors.json");

    fn ring() -> KeyRing {
        KeyRing::parse(
            "# test ring\nk2 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n\nk1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n",
        )
        .unwrap()
    }

    const NOW: Validity = Validity {
        now: 1_800_000_000,
        max_age: None,
    };

    #[test]
    fn seals_and_opens_with_every_key() {
        let ring = ring();
        let plain = br#"{"sub":"alice","exp":1900000000}"#;
        let cookie = seal(ring.sealing_key(), b"session", &[7; 12], plain);
        assert_eq!(
            open(&ring, b"session", cookie.as_bytes(), NOW).unwrap(),
            plain
        );
        assert_eq!(ring.sealing_key().id, b"k2");
        let old = seal(&SealKey::new(b"k1", &[1; 32]), b"session", &[8; 12], plain);
        assert_eq!(open(&ring, b"session", old.as_bytes(), NOW).unwrap(), plain);
    }

    #[test]
    fn vectors_match() {
        let vectors: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        for v in vectors["vectors"].as_array().unwrap() {
            let raw: [u8; 32] = STANDARD
                .decode(v["key"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            let key = SealKey::new(v["key_id"].as_str().unwrap().as_bytes(), &raw);
            let nonce: [u8; 12] = hex(v["nonce"].as_str().unwrap()).try_into().unwrap();
            let name = v["cookie_name"].as_str().unwrap().as_bytes();
            let identity = v["identity"].as_str().unwrap().as_bytes();
            let cookie = seal(&key, name, &nonce, identity);
            assert_eq!(
                cookie,
                v["cookie"].as_str().unwrap(),
                "vector {}",
                v["name"]
            );
            let ring = KeyRing { keys: vec![key] };
            let opened = open(&ring, name, cookie.as_bytes(), NOW);
            if v["name"] == "expired" {
                assert_eq!(opened, Err(OpenError::Expired));
            } else {
                assert_eq!(opened.unwrap(), identity);
            }
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn sealed(plain: &str) -> String {
        seal(ring().sealing_key(), b"session", &[9; 12], plain.as_bytes())
    }

    #[test]
    fn every_failure_is_refused() {
        let ring = ring();
        let good = sealed(r#"{"sub":"a","exp":1900000000}"#);
        let open_ = |v: &[u8]| open(&ring, b"session", v, NOW);
        assert!(open_(good.as_bytes()).is_ok());

        // A flipped byte anywhere in the decoded value.
        let bytes = URL_SAFE_NO_PAD.decode(&good).unwrap();
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            assert!(
                open_(URL_SAFE_NO_PAD.encode(&t).as_bytes()).is_err(),
                "byte {i}"
            );
        }
        assert_eq!(
            open(&ring, b"other", good.as_bytes(), NOW),
            Err(OpenError::Tag),
            "moved to another cookie"
        );
        assert_eq!(
            open_(&good.as_bytes()[..good.len() - 4]),
            Err(OpenError::Tag)
        );
        assert_eq!(open_(b"AQ"), Err(OpenError::Truncated));
        assert_eq!(open_(b""), Err(OpenError::Truncated));
        assert_eq!(open_(format!("{good}=").as_bytes()), Err(OpenError::Base64));
        assert_eq!(open_(b"not base64!"), Err(OpenError::Base64));
        assert_eq!(
            open_(&vec![b'A'; MAX_SEALED_LEN + 1]),
            Err(OpenError::TooLong)
        );
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(
            open_(URL_SAFE_NO_PAD.encode(&v2).as_bytes()),
            Err(OpenError::Version)
        );
        let stranger = seal(&SealKey::new(b"k9", &[9; 32]), b"session", &[1; 12], b"{}");
        assert_eq!(open_(stranger.as_bytes()), Err(OpenError::UnknownKey));
        let wrong_key_same_id = seal(&SealKey::new(b"k2", &[9; 32]), b"session", &[1; 12], b"{}");
        assert_eq!(open_(wrong_key_same_id.as_bytes()), Err(OpenError::Tag));
    }

    #[test]
    fn claims_are_checked() {
        let ring = ring();
        let open_ = |p: &str, v: Validity| open(&ring, b"session", sealed(p).as_bytes(), v);
        assert_eq!(open_(r#"{"exp":1700000000}"#, NOW), Err(OpenError::Expired));
        assert_eq!(open_(r#"{"exp":1800000000}"#, NOW), Err(OpenError::Expired));
        assert_eq!(open_(r#"{"sub":"a"}"#, NOW), Err(OpenError::NoExpiry));
        assert_eq!(
            open_(r#"{"exp":"1900000000"}"#, NOW),
            Err(OpenError::BadTime)
        );
        assert_eq!(open_(r#"["exp"]"#, NOW), Err(OpenError::NotObject));
        assert_eq!(open_("not json", NOW), Err(OpenError::NotObject));
        assert_eq!(
            open_(r#"{"exp":1900000000,"nbf":1850000000}"#, NOW),
            Err(OpenError::NotYetValid)
        );
        assert!(open_(r#"{"exp":1900000000,"nbf":1700000000}"#, NOW).is_ok());
        let max = Validity {
            max_age: Some(3600),
            ..NOW
        };
        assert_eq!(
            open_(r#"{"exp":1900000000,"iat":1799990000}"#, max),
            Err(OpenError::TooOld)
        );
        assert!(open_(r#"{"exp":1900000000,"iat":1799999000}"#, max).is_ok());
        assert_eq!(open_(r#"{"exp":1800007200}"#, max), Err(OpenError::TooOld));
        assert!(open_(r#"{"exp":1800001800}"#, max).is_ok());
    }

    #[test]
    fn time_claims_are_integers_in_range() {
        let ring = ring();
        let open_ = |p: &str| open(&ring, b"session", sealed(p).as_bytes(), NOW);
        for exp in [
            "1e300",
            "1.9e9",
            "1900000000.0",
            "1900000000.5",
            "19000000000000000000000",
            "9223372036854775807",
            "9223372036854775808",
            "253402300800",
            "-1",
            "-9223372036854775808",
            "\"1900000000\"",
            "true",
            "null",
            "[1900000000]",
        ] {
            assert_eq!(
                open_(&format!(r#"{{"sub":"a","exp":{exp}}}"#)),
                Err(OpenError::BadTime),
                "exp {exp}"
            );
        }
        assert!(open_(r#"{"exp":253402300799}"#).is_ok());
        assert_eq!(open_(r#"{"exp":0}"#), Err(OpenError::Expired));
        for claim in ["iat", "nbf"] {
            for bad in ["1e3", "1.5", "-1", "99999999999999999999", "\"0\"", "null"] {
                assert_eq!(
                    open_(&format!(r#"{{"exp":1900000000,"{claim}":{bad}}}"#)),
                    Err(OpenError::BadTime),
                    "{claim} {bad}"
                );
            }
            assert!(open_(&format!(r#"{{"exp":1900000000,"{claim}":0}}"#)).is_ok());
        }
        // A negative iat must not make "now - iat" overflow past max_age.
        let max = Validity {
            max_age: Some(3600),
            ..NOW
        };
        assert_eq!(
            open(
                &ring,
                b"session",
                sealed(r#"{"exp":1900000000,"iat":-9223372036854775808}"#).as_bytes(),
                max
            ),
            Err(OpenError::BadTime)
        );
    }

    #[test]
    fn repeated_time_claims_are_refused() {
        let ring = ring();
        let open_ = |p: &str| open(&ring, b"session", sealed(p).as_bytes(), NOW);
        assert_eq!(
            open_(r#"{"exp":1700000000,"sub":"a","exp":1900000000}"#),
            Err(OpenError::DuplicateClaim)
        );
        assert_eq!(
            open_(r#"{"exp":1900000000,"exp":1900000000}"#),
            Err(OpenError::DuplicateClaim)
        );
        assert_eq!(
            open_(r#"{"exp":1900000000,"e\u0078p":1700000000}"#),
            Err(OpenError::DuplicateClaim)
        );
        assert_eq!(
            open_(r#"{"exp":1900000000,"nbf":1850000000,"nbf":0}"#),
            Err(OpenError::DuplicateClaim)
        );
        assert_eq!(
            open_(r#"{"exp":1900000000,"iat":0,"iat":1799999999}"#),
            Err(OpenError::DuplicateClaim)
        );
        // Other repeated keys are the issuer's business.
        assert!(open_(r#"{"exp":1900000000,"sub":"a","sub":"b"}"#).is_ok());
        // "EXP" is another claim.
        assert!(open_(r#"{"exp":1900000000,"EXP":1}"#).is_ok());
    }

    #[test]
    fn iat_in_the_future_is_refused_beyond_the_skew() {
        let ring = ring();
        let open_ = |p: &str| open(&ring, b"session", sealed(p).as_bytes(), NOW);
        assert!(open_(r#"{"exp":1900000000,"iat":1800000000}"#).is_ok());
        assert!(open_(r#"{"exp":1900000000,"iat":1800000060}"#).is_ok());
        assert_eq!(
            open_(r#"{"exp":1900000000,"iat":1800000061}"#),
            Err(OpenError::IssuedInFuture)
        );
        assert_eq!(
            open_(r#"{"exp":1900000000,"iat":1899999999}"#),
            Err(OpenError::IssuedInFuture)
        );
        // With max_age, a future iat would otherwise look brand new for ever.
        let max = Validity {
            max_age: Some(3600),
            ..NOW
        };
        assert_eq!(
            open(
                &ring,
                b"session",
                sealed(r#"{"exp":1900000000,"iat":1890000000}"#).as_bytes(),
                max
            ),
            Err(OpenError::IssuedInFuture)
        );
    }

    #[test]
    fn identities_are_checked_before_sealing() {
        assert_eq!(
            check_identity(br#"{"exp":1900000000,"iat":1}"#),
            Ok(Times {
                exp: 1_900_000_000,
                iat: Some(1),
                nbf: None
            })
        );
        assert_eq!(check_identity(br#"{"exp":1e300}"#), Err(OpenError::BadTime));
        assert_eq!(
            check_identity(br#"{"exp":1,"exp":2}"#),
            Err(OpenError::DuplicateClaim)
        );
        assert_eq!(check_identity(br#"{"sub":"a"}"#), Err(OpenError::NoExpiry));
        assert_eq!(check_identity(b"[]"), Err(OpenError::NotObject));
    }

    #[test]
    fn key_rings_are_validated() {
        let k = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        assert_eq!(KeyRing::parse("").err(), Some(KeyRingError::Empty));
        assert_eq!(KeyRing::parse("# only\n").err(), Some(KeyRingError::Empty));
        assert_eq!(KeyRing::parse("k1\n").err(), Some(KeyRingError::Syntax(1)));
        assert_eq!(
            KeyRing::parse(&format!("k1 {k} x")).err(),
            Some(KeyRingError::Syntax(1))
        );
        assert_eq!(
            KeyRing::parse(&format!("k!1 {k}")).err(),
            Some(KeyRingError::KeyId(1))
        );
        assert_eq!(
            KeyRing::parse("\nk1 AQEB").err(),
            Some(KeyRingError::Key(2))
        );
        assert_eq!(
            KeyRing::parse(&format!("k1 {k}\nk1 {k}")).err(),
            Some(KeyRingError::DuplicateId(2, "k1".into()))
        );
        assert!(KeyRing::parse(&format!("k1 {k}")).is_ok());
    }
}
