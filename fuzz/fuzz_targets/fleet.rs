//! What reaches a gateway from Redis, on arbitrary bytes: the RESP parser and the fleet's
//! message decoder must refuse, never panic; a message a keyed fleet accepts is exactly
//! one it encoded.
#![no_main]

use identity_core::fleet::{FleetKey, Message};
use identity_core::resp;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn keyed() -> &'static FleetKey {
    static KEY: OnceLock<FleetKey> = OnceLock::new();
    KEY.get_or_init(|| FleetKey::from_secret(&[0x5a; 32]).expect("fixed test secret"))
}

fuzz_target!(|data: &[u8]| {
    // The parser never claims more bytes than it was given, and parses what it claims
    // the same way again.
    if let Ok(Some((reply, used))) = resp::parse(data) {
        assert!(used <= data.len());
        assert_eq!(resp::parse(&data[..used]), Ok(Some((reply, used))));
    }
    if let Ok(m) = FleetKey::public().decode(data) {
        assert_eq!(FleetKey::public().encode(&m), data);
    }
    if let Ok(m) = keyed().decode(data) {
        // Forging a tag is not something a fuzzer does: an accepted message is one the
        // key itself produces, byte for byte.
        assert_eq!(keyed().encode(&m), data);
        assert!(matches!(m, Message::Purge { .. } | Message::Revoke { .. }));
    }
});
