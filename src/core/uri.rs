//! Escaping a value into a URI's query, for `$identity_escaped_request_uri`: the original
//! request URI sent to the user service as `?request_uri=<escaped>`, the way the OpenResty
//! script's HTTP client (lua-resty-http, `ngx.encode_args`) sent it. nginx has no
//! URL-escaping of a variable: `?request_uri=$request_uri` breaks on `&`, `=` and `#`, and
//! a form-decoding user service would read `+` as a space.
//!
//! Every byte except RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) is
//! percent-encoded with uppercase hex, so the value decodes back to the exact bytes under
//! both RFC 3986 and `application/x-www-form-urlencoded` rules (space is `%20`, never `+`).
//! Bytes are escaped one by one: a URI that is not UTF-8 still round-trips.

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What is escaped: everything but ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986, 2.3).
/// `percent-encoding` always escapes non-ASCII bytes and controls; `NON_ALPHANUMERIC`
/// adds every other ASCII byte, and the four unreserved marks are taken back out.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The length of `escape_query_value(input)`, for sizing a buffer before writing it.
pub fn escaped_len(input: &[u8]) -> usize {
    input
        .iter()
        .map(|&b| if is_unreserved(b) { 1 } else { 3 })
        .sum()
}

/// `input` as a query value: unreserved bytes as they are, every other byte as `%XX`.
pub fn escape_query_value(input: &[u8]) -> String {
    percent_encode(input, QUERY_VALUE).collect()
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        escape_query_value(s.as_bytes())
    }

    /// What a form decoder (a user service reading `request_uri` from its query) gets back:
    /// `+` is a space there, `%XX` a byte.
    fn form_decode(s: &str) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        out
    }

    #[test]
    fn unreserved_characters_stay() {
        let all = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
        assert_eq!(esc(all), all);
    }

    #[test]
    fn query_separators_are_escaped() {
        assert_eq!(
            esc("/api/business?a=1&b=2"),
            "%2Fapi%2Fbusiness%3Fa%3D1%26b%3D2"
        );
        assert_eq!(esc("&"), "%26");
        assert_eq!(esc("="), "%3D");
        assert_eq!(esc("?"), "%3F");
        assert_eq!(esc("#"), "%23");
    }

    #[test]
    fn plus_percent_and_space() {
        // `+` must not come back as a space, nor `%41` as `A`, nor a space as `+`.
        assert_eq!(esc("+"), "%2B");
        assert_eq!(esc("%"), "%25");
        assert_eq!(esc("%41"), "%2541");
        assert_eq!(esc(" "), "%20");
        assert_eq!(esc("a b+c"), "a%20b%2Bc");
    }

    #[test]
    fn utf8_is_escaped_byte_by_byte_in_uppercase() {
        assert_eq!(esc("é"), "%C3%A9");
        assert_eq!(esc("/用户"), "%2F%E7%94%A8%E6%88%B7");
        // Not UTF-8 at all: still one `%XX` a byte.
        assert_eq!(escape_query_value(&[0xff, 0x00, b'a']), "%FF%00a");
    }

    #[test]
    fn every_other_byte_is_escaped() {
        for b in 0u8..=255 {
            let out = escape_query_value(&[b]);
            if is_unreserved(b) {
                assert_eq!(out.as_bytes(), [b]);
            } else {
                assert_eq!(out, format!("%{b:02X}"));
            }
        }
    }

    #[test]
    fn a_form_decoder_reads_back_the_exact_uri() {
        for uri in [
            "/api/business/x?q=a+b&r=%2F&s=é%20t&u==?#",
            "/api/business/?next=/a?b=c&d",
            "/a%zz%",
            "",
        ] {
            assert_eq!(form_decode(&esc(uri)), uri.as_bytes(), "{uri}");
        }
    }

    #[test]
    fn escaped_len_matches() {
        for uri in ["", "/a?b=c&d=é", "~-._", "%+ "] {
            assert_eq!(escaped_len(uri.as_bytes()), esc(uri).len(), "{uri}");
        }
    }
}
