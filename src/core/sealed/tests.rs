use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

use super::*;

const VECTORS: &str = include_str!("../../../t/sealed-vectors.json");

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
    let cookie = seal_cookie(ring.sealing_key(), b"session", &[7; 12], plain).unwrap();
    assert_eq!(
        open(&ring, b"session", cookie.as_bytes(), NOW).unwrap(),
        plain
    );
    assert_eq!(ring.sealing_key().id, b"k2");
    let old = seal_cookie(
        &SealKey::new(b"k1", &[1; 32]).unwrap(),
        b"session",
        &[8; 12],
        plain,
    )
    .unwrap();
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
        let key = SealKey::new(v["key_id"].as_str().unwrap().as_bytes(), &raw).unwrap();
        let nonce: [u8; 12] = hex(v["nonce"].as_str().unwrap()).try_into().unwrap();
        let name = v["cookie_name"].as_str().unwrap().as_bytes();
        let identity = v["identity"].as_str().unwrap().as_bytes();
        let cookie = seal_cookie(&key, name, &nonce, identity).unwrap();
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
    seal_cookie(ring().sealing_key(), b"session", &[9; 12], plain.as_bytes()).unwrap()
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
    let stranger = seal_cookie(
        &SealKey::new(b"k9", &[9; 32]).unwrap(),
        b"session",
        &[1; 12],
        b"{}",
    )
    .unwrap();
    assert_eq!(open_(stranger.as_bytes()), Err(OpenError::UnknownKey));
    let wrong_key_same_id = seal_cookie(
        &SealKey::new(b"k2", &[9; 32]).unwrap(),
        b"session",
        &[1; 12],
        b"{}",
    )
    .unwrap();
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

#[test]
fn an_identity_too_long_to_open_is_not_sealed() {
    let ring = ring();
    // Under the two-byte id "k2" a cookie is 32 bytes plus the identity, in base64:
    // 3040 bytes make 4096 characters, the most the gateway opens.
    let identity = |len: usize| {
        let head = r#"{"exp":1900000000,"p":""#;
        format!("{head}{}\"}}", "x".repeat(len - head.len() - 2))
    };
    let longest = identity(3040);
    let cookie = seal_cookie(ring.sealing_key(), b"session", &[1; 12], longest.as_bytes());
    let cookie = cookie.unwrap();
    assert_eq!(cookie.len(), MAX_SEALED_LEN);
    assert_eq!(
        open(&ring, b"session", cookie.as_bytes(), NOW).unwrap(),
        longest.as_bytes()
    );
    let over = identity(3041);
    assert_eq!(
        seal_cookie(ring.sealing_key(), b"session", &[1; 12], over.as_bytes()),
        Err(SealError::TooLong)
    );
    // Written anyway, the gateway refuses it unread.
    let unchecked =
        cookie::encrypt(ring.sealing_key(), b"session", &[1; 12], over.as_bytes()).unwrap();
    assert_eq!(
        open(&ring, b"session", unchecked.as_bytes(), NOW),
        Err(OpenError::TooLong)
    );
    assert_eq!(
        cookie::encrypt(ring.sealing_key(), b"session", &[1; 12], longest.as_bytes()).unwrap(),
        cookie
    );
}
