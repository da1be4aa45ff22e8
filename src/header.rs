//! Header and cookie rules that need no nginx: name matching for anti-spoofing, value
//! checks before a header is sent, and removing one cookie from a Cookie line.

use core::fmt;

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

/// Client headers that never reach the user service: they describe the client's own
/// body or connection, and the identity subrequest is a GET without a body.
pub fn is_withheld_from_subrequest(name: &[u8]) -> bool {
    const WITHHELD: [&[u8]; 6] = [
        b"content-length",
        b"transfer-encoding",
        b"upgrade",
        b"connection",
        b"keep-alive",
        b"expect",
    ];
    WITHHELD.iter().any(|w| name.eq_ignore_ascii_case(w))
}

/// Removes every cookie called one of `names` from one Cookie line.
/// Returns `None` when the line holds none of them (nothing to rewrite), otherwise the
/// rewritten line, which is empty when the removed cookies were all it held.
/// Names compare ASCII case-insensitively, as nginx's `$cookie_NAME` does.
pub fn strip_cookies(line: &[u8], names: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut removed = false;
    for pair in line.split(|&b| b == b';') {
        let pair = trim_ows(pair);
        if pair.is_empty() {
            continue;
        }
        let name = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => trim_ows(&pair[..eq]),
            None => pair,
        };
        if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            removed = true;
        } else {
            kept.push(pair);
        }
    }
    removed.then(|| kept.join(&b"; "[..]))
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The value of the first cookie called exactly `name` in one Cookie line.
pub fn cookie_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    line.split(|&b| b == b';').find_map(|pair| {
        let pair = trim_ows(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        (trim_ows(&pair[..eq]) == name).then(|| trim_ows(&pair[eq + 1..]))
    })
}

/// The cookie names an `identity_key` reads, from its `$cookie_NAME` / `${cookie_NAME}`
/// variables, so `identity_strip_cookie on` knows which cookie is the session.
pub fn cookie_names_in_key(source: &[u8]) -> Vec<Vec<u8>> {
    let mut names = Vec::new();
    let mut i = 0;
    while i < source.len() {
        if source[i] != b'$' {
            i += 1;
            continue;
        }
        let braced = source.get(i + 1) == Some(&b'{');
        let start = i + 1 + usize::from(braced);
        let end = source[start..]
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
            .map_or(source.len(), |p| start + p);
        let var = &source[start..end];
        if var.len() > 7 && var[..7].eq_ignore_ascii_case(b"cookie_") {
            let name = var[7..].to_ascii_lowercase();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        i = end.max(i + 1);
    }
    names
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
    fn withheld_headers_are_body_and_connection_ones() {
        for h in [
            "Content-Length",
            "transfer-encoding",
            "UPGRADE",
            "Connection",
        ] {
            assert!(is_withheld_from_subrequest(h.as_bytes()), "{h}");
        }
        for h in ["Cookie", "Authorization", "X-Forwarded-For", "Content-Type"] {
            assert!(!is_withheld_from_subrequest(h.as_bytes()), "{h}");
        }
    }

    fn names(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|n| n.as_bytes().to_vec()).collect()
    }

    #[test]
    fn strips_only_the_named_cookie() {
        let session = names(&["session"]);
        assert_eq!(
            strip_cookies(b"a=1; session=abc; b=2", &session).as_deref(),
            Some(&b"a=1; b=2"[..])
        );
        assert_eq!(
            strip_cookies(b"session=abc", &session).as_deref(),
            Some(&b""[..])
        );
        assert_eq!(strip_cookies(b"xsession=1; session_old=2", &session), None);
        assert_eq!(
            strip_cookies(b"xsession=1;session=\"q\";session_old=2", &session).as_deref(),
            Some(&b"xsession=1; session_old=2"[..])
        );
        assert_eq!(
            strip_cookies(b"SESSION=1; a=2", &session).as_deref(),
            Some(&b"a=2"[..])
        );
        assert_eq!(
            strip_cookies(b"session=1; session=2", &session).as_deref(),
            Some(&b""[..])
        );
    }

    #[test]
    fn finds_a_cookie_by_exact_name() {
        assert_eq!(
            cookie_value(b"a=1; session=xyz; b=2", b"session"),
            Some(&b"xyz"[..])
        );
        assert_eq!(
            cookie_value(b"session=first;session=second", b"session"),
            Some(&b"first"[..])
        );
        assert_eq!(cookie_value(b"xsession=1; session_old=2", b"session"), None);
        assert_eq!(cookie_value(b"Session=1", b"session"), None);
        assert_eq!(cookie_value(b"session=", b"session"), Some(&b""[..]));
        assert_eq!(cookie_value(b"session", b"session"), None);
    }

    #[test]
    fn finds_cookie_variables_in_the_key() {
        assert_eq!(cookie_names_in_key(b"$cookie_session"), names(&["session"]));
        assert_eq!(
            cookie_names_in_key(b"${cookie_SID}:$http_authorization$cookie_b"),
            names(&["sid", "b"])
        );
        assert!(cookie_names_in_key(b"$http_authorization").is_empty());
        assert!(cookie_names_in_key(b"$cookie_").is_empty());
        assert!(cookie_names_in_key(b"cookie_session$").is_empty());
    }
}
