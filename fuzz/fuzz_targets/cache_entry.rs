//! Decoding cached answers and reading Cache-Control and Vary from arbitrary bytes.
#![no_main]

use identity_core::cache_entry;
use identity_core::claims::{reference, Claims};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(cached) = cache_entry::decode(401, data) {
        let answer = &cached.answer;
        // Whatever index the bytes held, what it gives lies in the body (`fields` reads
        // every span).
        if let Some(Ok(claims)) = &cached.claims {
            let _ = reference::fields(claims, &answer.body);
        }
        let again = cache_entry::encode(answer);
        let back = cache_entry::decode(401, &again).expect("what encode wrote decodes");
        assert_eq!(back.answer.body, answer.body);
        assert_eq!(back.answer.vary_digest, answer.vary_digest);
        assert_eq!(
            cache_entry::parse_vary(&back.answer.vary),
            cache_entry::parse_vary(&answer.vary)
        );
        // The index encode wrote gives what parsing the body gives.
        match (Claims::parse(&answer.body), &back.claims) {
            (Ok(p), Some(Ok(c))) => assert_eq!(
                reference::fields(c, &answer.body),
                reference::fields(&p, &answer.body)
            ),
            (Err(p), Some(Err(c))) => assert_eq!(p, *c),
            (Ok(_), None) => {}
            _ => panic!("the index does not give what parsing gives"),
        }
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
