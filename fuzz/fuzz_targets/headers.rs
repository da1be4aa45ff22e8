//! Header-name matching, value checks and cookie handling on arbitrary bytes.
#![no_main]

use identity_core::header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0xff).unwrap_or(data.len());
    let (a, b) = (&data[..split], data.get(split + 1..).unwrap_or_default());

    // Matching is symmetric and agrees with the fold it is defined by.
    let m = header::header_names_match(a, b);
    assert_eq!(m, header::header_names_match(b, a));
    if m {
        assert_eq!(a.len(), b.len());
    }
    assert!(header::header_names_match(a, a));

    // A value that passes the check holds no CR, LF or NUL.
    if header::check_header_value(a).is_ok() {
        assert!(!a.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0));
    }

    // Stripping a cookie leaves no cookie of that name behind.
    let name = b
        .split(|&c| c == b'=' || c == b';')
        .next()
        .unwrap_or_default();
    let name = name.trim_ascii();
    if !name.is_empty() && !name.contains(&b' ') && !name.contains(&b'\t') {
        let names = vec![name.to_vec()];
        if let Some(rest) = header::strip_cookies(a, &names) {
            assert!(header::cookie_value(&rest, name).is_none());
            assert_eq!(header::cookie_count(&rest, name), 0);
            assert!(rest.len() <= a.len() + a.len() / 2 + 2);
        }
    }
    let _ = header::cookie_value(a, b);
    let _ = header::cookie_count(a, b);
    let _ = header::cookie_names_in_key(a);
    let _ = header::is_valid_header_name(a);
});
