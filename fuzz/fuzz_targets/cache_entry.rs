//! Decoding cached answers and reading Cache-Control and Vary from arbitrary bytes.
#![no_main]

use identity_core::cache_entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(answer) = cache_entry::decode(401, data) {
        let again = cache_entry::encode(&answer);
        let back = cache_entry::decode(401, &again).expect("what encode wrote decodes");
        assert_eq!(back.body, answer.body);
        assert_eq!(back.vary_digest, answer.vary_digest);
        assert_eq!(
            cache_entry::parse_vary(&back.vary),
            cache_entry::parse_vary(&answer.vary)
        );
    }
    if let cache_entry::Vary::Headers(names) = cache_entry::parse_vary(data) {
        let headers = [(data.to_vec(), data.to_vec())];
        let _ = cache_entry::vary_input(&names, &headers);
    }
    let rules = cache_entry::DEFAULT_VALID;
    if let Some(ttl) = cache_entry::ttl_for(&rules, 200, data) {
        assert!(ttl <= 60);
    }
});
