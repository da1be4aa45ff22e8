//! Claim extraction from arbitrary user-service bodies, differential: `Claims::parse`
//! (a fast scanner, serde_json when it is not sure) and `Claims::get` must agree with the
//! serde_json-only reference on every input: the same refusal, the same fields in the
//! same order, the same claim text. The claims index a cache entry keeps
//! (`Claims::index`) must give back what parsing gives, or nothing (parse when read).
#![no_main]

use identity_core::claims::{self, reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(0);
    let (name, body) = data.split_at(split);
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    let body = body.get(1..).unwrap_or(body);
    let fast = claims::Claims::parse(body);
    let slow = reference::parse(body);
    let mut record = Vec::new();
    claims::Claims::index(body, &mut record);
    let mut rest = &record[..];
    let index = claims::Index::take(&mut rest).expect("an index reads back");
    assert!(rest.is_empty());
    let indexed = index.claims(body).expect("an index fits its own body");
    match (&fast, &indexed) {
        (Ok(f), Some(Ok(i))) => {
            assert!(reference::is_fast(f) && reference::is_fast(i));
            assert_eq!(reference::fields(i, body), reference::fields(f, body));
        }
        // Not indexed (serde_json's path, or a field too long for the index's bytes).
        (Ok(_), None) => {}
        (Err(f), Some(Err(i))) => assert_eq!(f, i),
        _ => panic!("parse {fast:?} vs index {indexed:?}"),
    }
    match (&fast, &slow) {
        (Ok(f), Ok(s)) => {
            let fields = reference::fields(f, body);
            assert_eq!(fields, reference::fields(s, body));
            let mut names: Vec<String> = vec![name.into(), "id".into(), name.to_uppercase()];
            for (k, _) in &fields {
                if let Ok(k) = std::str::from_utf8(k) {
                    names.push(k.into());
                    names.push(k.to_ascii_uppercase());
                }
            }
            for n in &names {
                let got = f.get(body, n);
                if let Some(Ok(i)) = &indexed {
                    assert_eq!(i.get(body, n), got, "{n}");
                    assert_eq!(
                        i.text(body, n).map(|t| t.into_owned()),
                        got.as_ref().map(|g| g.as_bytes().to_vec()),
                        "{n}"
                    );
                }
                assert_eq!(got, reference::get(s, body, n), "{n}");
                assert_eq!(got, reference::get(f, body, n), "{n}");
                assert_eq!(f.raw_all(body, n), s.raw_all(body, n), "{n}");
                assert_eq!(f.raw(body, n), s.raw(body, n), "{n}");
            }
        }
        (Err(f), Err(s)) => assert_eq!(f, s),
        _ => panic!("fast {fast:?} vs serde_json {slow:?}"),
    }
});
