//! Header rules that need no nginx: name matching for anti-spoofing, value checks before
//! a header is sent, and which client headers the identity subrequest withholds. Cookie
//! lines (`cookie`) and the names an `identity_key` reads (`key_names`) have files of
//! their own; their functions are re-exported here, where the nginx layer finds them.

use core::fmt;

mod cookie;
mod key_names;

pub use cookie::{cookie_count, cookie_value, strip_cookies};
pub use key_names::{
    cookie_names_in_key, header_is_variable, header_names_in_key, single_variable,
};

/// Whether two header names denote the same header for anti-spoofing purposes:
/// compared case-insensitively, with `_`, `.` and `-` the same, because many upstreams
/// fold them alike: CGI, PHP and WSGI turn `X-User`, `X_User` and `X.User` into
/// `HTTP_X_USER`, and nginx passes `.` and `_` on with `ignore_invalid_headers off`.
pub fn header_names_match(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(&x, &y)| fold_name_byte(x) == fold_name_byte(y))
}

fn fold_name_byte(b: u8) -> u8 {
    match b {
        b'_' | b'.' => b'-',
        _ => b.to_ascii_lowercase(),
    }
}

/// A header name is an RFC 9110 token.
pub fn is_valid_header_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| is_tchar(b))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Why a header value must not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeValue {
    CarriageReturn,
    LineFeed,
    Nul,
    Control(u8),
}

impl fmt::Display for UnsafeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnsafeValue::CarriageReturn => f.write_str("holds a carriage return"),
            UnsafeValue::LineFeed => f.write_str("holds a line feed"),
            UnsafeValue::Nul => f.write_str("holds a NUL byte"),
            UnsafeValue::Control(b) => write!(f, "holds the control byte 0x{b:02x}"),
        }
    }
}

/// Checks a field value against RFC 9110: visible ASCII, space, tab and obs-text
/// (bytes >= 0x80, so UTF-8 names pass) are allowed; every other control byte is not.
pub fn check_header_value(value: &[u8]) -> Result<(), UnsafeValue> {
    if has_no_control(value) {
        return Ok(());
    }
    // A tab, or a byte to refuse: byte by byte, to name the first.
    for &b in value {
        match b {
            b'\r' => return Err(UnsafeValue::CarriageReturn),
            b'\n' => return Err(UnsafeValue::LineFeed),
            0 => return Err(UnsafeValue::Nul),
            b'\t' => {}
            0x01..=0x1f | 0x7f => return Err(UnsafeValue::Control(b)),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `value` holds no byte below 0x20 (tab included) and no 0x7f: the usual case,
/// checked on every request for every identity header (the identity is hundreds of
/// bytes), so without a branch per byte.
fn has_no_control(value: &[u8]) -> bool {
    match value.last_chunk::<BLOCK>() {
        // Whole blocks, and the last BLOCK bytes for the rest (overlapping is harmless).
        Some(last) => {
            value
                .chunks_exact(BLOCK)
                .all(|b| <&[u8; BLOCK]>::try_from(b).is_ok_and(block_has_no_control))
                && block_has_no_control(last)
        }
        None => {
            let mut words = value.chunks_exact(8);
            words.by_ref().all(|w| {
                // Never 0 for eight bytes; a 0 would only send the value byte by byte.
                let x = <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes);
                !has_less(x, 0x20) && !has_byte(x, 0x7f)
            }) && !words.remainder().iter().any(|&b| is_control(b))
        }
    }
}

/// Bytes per block of `has_no_control`: two SSE2 vectors.
const BLOCK: usize = 32;

fn block_has_no_control(block: &[u8; BLOCK]) -> bool {
    // No early exit inside a block: the compiler turns the fold into vector compares.
    !block.iter().fold(false, |any, &b| any | is_control(b))
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// The identity as `$identity` gives it: the user service's body without the line ending
/// (and spaces or tabs) it may close with. A plain token written with `print` or `echo`
/// arrives as `token\n`, which as a header value would be refused; what the script
/// before this module did with it (set it as the header) is kept, minus the invalid
/// ending. Only the end is trimmed: a CR or LF anywhere else still makes the value unsafe
/// (`check_header_value`), so nothing can start a second header line.
pub fn trim_identity(body: &[u8]) -> &[u8] {
    let end = body
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    &body[..end]
}

// Eight bytes at a time ("SWAR"): these tell whether a word holds a byte of interest,
// exactly (a word that holds none is never flagged, and one that holds one always is).
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `x` is below `n` (n <= 128).
fn has_less(x: u64, n: u8) -> bool {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS != 0
}

/// Whether any byte of `x` is `c`.
fn has_byte(x: u64, c: u8) -> bool {
    has_less(x ^ (ONES * u64::from(c)), 1)
}

/// The index of the first `a` or `b` in `s` (memchr's vectorised search: cookie lines are
/// scanned on every request).
fn find_either(s: &[u8], a: u8, b: u8) -> Option<usize> {
    memchr::memchr2(a, b, s)
}

/// Client headers that never reach the user service: they describe the client's own
/// body or connection, and the identity subrequest is a GET without a body. Look-alike
/// names (`Transfer.Encoding`, `Content_Length`) are withheld too.
pub fn is_withheld_from_subrequest(name: &[u8]) -> bool {
    const WITHHELD: [&[u8]; 6] = [
        b"content-length",
        b"transfer-encoding",
        b"upgrade",
        b"connection",
        b"keep-alive",
        b"expect",
    ];
    WITHHELD.iter().any(|w| header_names_match(name, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_case_and_separator_insensitively() {
        assert!(header_names_match(b"X-User", b"x-user"));
        assert!(header_names_match(b"X-User", b"X_USER"));
        assert!(header_names_match(b"x_user_id", b"X-User-Id"));
        assert!(header_names_match(b"X-User", b"X.User"));
        assert!(header_names_match(b"x.user.id", b"X-User_Id"));
        assert!(header_names_match(b"X_User", b"x.uSER"));
        assert!(!header_names_match(b"X-User", b"X:User"));
        assert!(!header_names_match(b"X-User", b"X User"));
        assert!(!header_names_match(b"X-User", b"X-Users"));
        assert!(!header_names_match(b"X-User", b"X-Usex"));
        assert!(!header_names_match(b"X-User", b"XUser"));
    }

    #[test]
    fn header_names_are_tokens() {
        assert!(is_valid_header_name(b"X-User_Id"));
        assert!(!is_valid_header_name(b""));
        assert!(!is_valid_header_name(b"X User"));
        assert!(!is_valid_header_name(b"X-User:"));
        assert!(!is_valid_header_name(b"X-\xc3\xa9"));
    }

    #[test]
    fn values_with_control_bytes_are_refused() {
        assert_eq!(check_header_value(b"alice"), Ok(()));
        assert_eq!(check_header_value(b"a\tb c"), Ok(()));
        assert_eq!(check_header_value("José".as_bytes()), Ok(()));
        assert_eq!(check_header_value(b"\xff\xfe"), Ok(()));
        assert_eq!(
            check_header_value(b"a\r\nX-Admin: 1"),
            Err(UnsafeValue::CarriageReturn)
        );
        assert_eq!(check_header_value(b"a\nb"), Err(UnsafeValue::LineFeed));
        assert_eq!(check_header_value(b"a\0b"), Err(UnsafeValue::Nul));
        assert_eq!(
            check_header_value(b"a\x7f"),
            Err(UnsafeValue::Control(0x7f))
        );
        assert_eq!(
            check_header_value(b"\x1b[0m"),
            Err(UnsafeValue::Control(0x1b))
        );
    }

    #[test]
    fn every_byte_at_every_place_is_judged_alike() {
        let reference = |v: &[u8]| {
            v.iter().find_map(|&b| match b {
                b'\r' => Some(UnsafeValue::CarriageReturn),
                b'\n' => Some(UnsafeValue::LineFeed),
                0 => Some(UnsafeValue::Nul),
                0x01..=0x08 | 0x0a..=0x1f | 0x7f => Some(UnsafeValue::Control(b)),
                _ => None,
            })
        };
        // Words, whole blocks and the overlapping last block, each byte alone.
        for len in [1, 7, 8, 15, 16, 17, 31, 32, 33, 40, 63, 64, 65, 79, 200] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    assert_eq!(
                        check_header_value(&v).err(),
                        reference(&v),
                        "byte {b:#x} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_identity_loses_its_line_ending_only() {
        assert_eq!(trim_identity(b"a.b.c\n"), b"a.b.c");
        assert_eq!(trim_identity(b"a.b.c\r\n"), b"a.b.c");
        assert_eq!(trim_identity(b"alice \t\r\n\n"), b"alice");
        assert_eq!(trim_identity(b"alice"), b"alice");
        assert_eq!(trim_identity(b"\n\r \t"), b"");
        assert_eq!(trim_identity(b""), b"");
        // The start and the middle stay as they are: a line break inside is still refused.
        assert_eq!(trim_identity(b" alice\n"), b" alice");
        let inside = trim_identity(b"alice\r\nX-Admin: 1\n");
        assert_eq!(inside, b"alice\r\nX-Admin: 1");
        assert_eq!(check_header_value(inside), Err(UnsafeValue::CarriageReturn));
        assert_eq!(
            check_header_value(trim_identity(b"a\nb\n")),
            Err(UnsafeValue::LineFeed)
        );
        assert_eq!(check_header_value(trim_identity(b"a.b.c\r\n")), Ok(()));
    }

    #[test]
    fn withheld_headers_are_body_and_connection_ones() {
        for h in [
            "Content-Length",
            "transfer-encoding",
            "UPGRADE",
            "Connection",
            "Transfer.Encoding",
            "content_length",
            "Keep.Alive",
        ] {
            assert!(is_withheld_from_subrequest(h.as_bytes()), "{h}");
        }
        for h in ["Cookie", "Authorization", "X-Forwarded-For", "Content-Type"] {
            assert!(!is_withheld_from_subrequest(h.as_bytes()), "{h}");
        }
    }

    #[test]
    fn the_word_scan_finds_the_same_byte_as_a_byte_scan() {
        let bytewise = |v: &[u8]| -> Result<(), UnsafeValue> {
            for &b in v {
                match b {
                    b'\r' => return Err(UnsafeValue::CarriageReturn),
                    b'\n' => return Err(UnsafeValue::LineFeed),
                    0 => return Err(UnsafeValue::Nul),
                    0x01..=0x08 | 0x0a..=0x1f | 0x7f => return Err(UnsafeValue::Control(b)),
                    _ => {}
                }
            }
            Ok(())
        };
        // Words (below BLOCK bytes), whole blocks and the overlapping last block.
        for len in (0..20).chain([31, 32, 33, 40, 63, 64, 65, 79]) {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'x'; len];
                    v[at] = b;
                    if at + 3 < len {
                        v[at + 3] = b'\r';
                    }
                    assert_eq!(check_header_value(&v), bytewise(&v), "{v:?}");
                }
            }
        }
        assert_eq!(find_either(b"0123456789,;", b';', b','), Some(10));
        assert_eq!(find_either(b"0123456789", b';', b','), None);
    }
}
