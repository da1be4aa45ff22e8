//! The sealed-cookie opener on arbitrary bytes: it must refuse, never panic, and never
//! open something it did not seal.
#![no_main]

use identity_core::sealed;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn ring() -> &'static sealed::KeyRing {
    static RING: OnceLock<sealed::KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        sealed::KeyRing::parse(
            "k1 QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=\n\
             2026-11 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        )
        .expect("fixed test ring")
    })
}

fuzz_target!(|data: &[u8]| {
    let validity = sealed::Validity {
        now: 1_800_000_000,
        max_age: Some(43_200),
    };
    let _ = sealed::open(ring(), b"session", data, validity);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sealed::KeyRing::parse(text);
    }
    // Whatever is sealed opens again, and only under its own cookie name.
    if data.len() < 512 {
        let cookie = sealed::seal_cookie(ring().sealing_key(), b"session", &[3; 12], data)
            .expect("an identity under 512 bytes fits a cookie");
        let any_time = sealed::Validity {
            now: 0,
            max_age: None,
        };
        match sealed::open(ring(), b"session", cookie.as_bytes(), any_time) {
            Ok(plain) => assert_eq!(plain, data),
            Err(e) => assert!(
                matches!(
                    e,
                    sealed::OpenError::NotObject
                        | sealed::OpenError::NoExpiry
                        | sealed::OpenError::Expired
                        | sealed::OpenError::NotYetValid
                        | sealed::OpenError::TooLong
                        | sealed::OpenError::BadTime
                        | sealed::OpenError::DuplicateClaim
                        | sealed::OpenError::IssuedInFuture
                ),
                "{e:?}"
            ),
        }
        assert!(sealed::open(ring(), b"other", cookie.as_bytes(), any_time).is_err());
    }
});
