//! Claim extraction from arbitrary user-service bodies.
#![no_main]

use identity_core::claims;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(0);
    let (name, body) = data.split_at(split);
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    let body = body.get(1..).unwrap_or(body);
    if let Ok(c) = claims::Claims::parse(body) {
        let _ = c.get(body, name);
        let _ = c.get(body, "id");
    }
});
