//! Cookie lines: finding a cookie as nginx does, counting and removing it as any common
//! reader would take it.

// nginx (1.22 and 1.28 alike: `ngx_http_parse_multi_header_lines`) finds
// `$cookie_NAME` thus: a cookie starts at the line's start or after any ';' or ',' (then
// spaces), its name compares ASCII case-insensitively, spaces may precede the '=', and
// its value runs to the next ';' (a ',' does not end it). Upstream frameworks read the
// same line differently (split on ';' only, trim tabs too, last copy wins, PHP decodes
// %XX in names and folds '.' and ' ' into '_'). So the module finds a cookie exactly as
// nginx does, and treats as "the cookie" anything any of those readings could take for
// it when it strips the cookie or asks whether it was sent twice.

use std::borrow::Cow;

use super::find_either;

/// The value nginx gives `$cookie_NAME` for one Cookie line, byte for byte: the first
/// cookie called `name` (ASCII case-insensitively) at the line's start or after a ';' or
/// ',' and spaces, with spaces allowed around the '='; the value runs to the next ';'.
/// nginx's quirk is kept too: the byte after a matching name that is neither a space nor
/// '=' is consumed before nginx looks for the next separator.
pub fn cookie_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    if name.is_empty() || name.len() > line.len() {
        return None;
    }
    let end = line.len();
    let mut i = 0;
    while i < end {
        if line[i..].len() >= name.len() && line[i..i + name.len()].eq_ignore_ascii_case(name) {
            i += name.len();
            while i < end && line[i] == b' ' {
                i += 1;
            }
            if i < end {
                let at = line[i];
                i += 1;
                if at == b'=' {
                    while i < end && line[i] == b' ' {
                        i += 1;
                    }
                    let last = find_either(&line[i..], b';', b';').map_or(end, |p| i + p);
                    return Some(&line[i..last]);
                }
            }
        }
        // Past the next ';' or ','.
        i = find_either(&line[i..], b';', b',').map_or(end, |p| i + p + 1);
        while i < end && line[i] == b' ' {
            i += 1;
        }
    }
    None
}

/// How many times one Cookie line carries the cookie `name`, counting every piece
/// between ';' and ',' separators that any common reading takes for it (see
/// `same_cookie_name`). Each place nginx finds the cookie is counted.
pub fn cookie_count(line: &[u8], name: &[u8]) -> usize {
    let name = comparable_name(name);
    pieces(line)
        .filter(|piece| piece_is_cookie(piece, &name))
        .count()
}

/// The pieces of `line` between ';' and ',' separators, as `line.split` would give them.
fn pieces(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(line);
    core::iter::from_fn(move || {
        let s = rest?;
        match find_either(s, b';', b',') {
            Some(p) => {
                rest = s.get(p + 1..);
                s.get(..p)
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

/// `name` as `piece_is_cookie` compares it: borrowed and trimmed when there is nothing
/// to decode in it (the usual case: no allocation), else `fold_cookie_name`'s result.
/// `piece_is_cookie` folds the case and '.' and ' ' on both sides, which leaves a folded
/// name as it is.
fn comparable_name(name: &[u8]) -> Cow<'_, [u8]> {
    let trimmed = trim_ows(name);
    if needs_decoding(trimmed) {
        Cow::Owned(fold_cookie_name(name))
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// Removes every cookie called one of `names` from one Cookie line.
/// Returns `None` when the line holds none of them (nothing to rewrite), otherwise the
/// rewritten line, which is empty when the removed cookies were all it held.
/// The line is cut at ';' (where every reader agrees a cookie ends), and a piece goes
/// whole when nginx or any common reading finds the cookie anywhere in it: so
/// `theme=dark,session=x` goes whole, because nginx reads `session=x` out of it.
pub fn strip_cookies(line: &[u8], names: &[Vec<u8>]) -> Option<Vec<u8>> {
    let folded: Vec<Cow<'_, [u8]>> = names.iter().map(|n| comparable_name(n)).collect();
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut removed = false;
    for segment in line.split(|&b| b == b';') {
        let segment = trim_ows(segment);
        if segment.is_empty() {
            continue;
        }
        let holds = names.iter().zip(&folded).any(|(name, folded)| {
            starts_with_cookie(segment, name)
                || segment
                    .split(|&b| b == b',')
                    .any(|piece| piece_is_cookie(piece, folded))
        });
        if holds {
            removed = true;
        } else {
            kept.push(segment);
        }
    }
    removed.then(|| kept.join(&b"; "[..]))
}

/// Whether nginx could start reading `name=` at the start of `segment` or after any ','
/// in it (spaces or tabs skipped), whatever follows: a superset of where nginx's own scan
/// can find it, whatever the name holds.
fn starts_with_cookie(segment: &[u8], name: &[u8]) -> bool {
    let starts = core::iter::once(0).chain(
        segment
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b',')
            .map(|(i, _)| i + 1),
    );
    starts.into_iter().any(|start| {
        let rest = trim_ows(&segment[start..]);
        rest.len() > name.len()
            && rest[..name.len()].eq_ignore_ascii_case(name)
            && trim_ows(&rest[name.len()..]).first() == Some(&b'=')
    })
}

/// Whether one piece between separators is a `name=value` cookie whose name folds to
/// what `name` folds to (`name` from `comparable_name`).
fn piece_is_cookie(piece: &[u8], name: &[u8]) -> bool {
    let Some(eq) = piece.iter().position(|&b| b == b'=') else {
        return false;
    };
    let raw = trim_ows(&piece[..eq]);
    let same = |folded: &[u8]| {
        folded.len() == name.len()
            && folded
                .iter()
                .zip(name)
                .all(|(&a, &b)| fold_name_char(a) == fold_name_char(b))
    };
    if !needs_decoding(name) {
        // The usual name. `same` folds nothing into '%' or '+', so a piece it matches
        // holds neither and needs no decoding: the answer, with no scan for them (and
        // first the usual piece, the name as it is).
        if raw == name || same(raw) {
            return true;
        }
        // Decoding and trimming never lengthen a name.
        if raw.len() < name.len() {
            return false;
        }
    }
    if needs_decoding(raw) {
        return same(&fold_cookie_name(raw));
    }
    // Nothing to decode: compare in place, with no allocation per cookie.
    same(raw)
}

/// Whether a cookie name holds what `fold_cookie_name` decodes (one pass: names are
/// short, and this runs for every cookie of every request).
fn needs_decoding(name: &[u8]) -> bool {
    name.iter().any(|&b| b == b'%' || b == b'+')
}

/// A cookie name as the most lenient common reader sees it: surrounding spaces and tabs
/// trimmed, %XX and '+' decoded (PHP), ASCII case folded (nginx), and '.' and ' ' folded
/// into '_' (PHP), so `Sess%69on`, ` session ` and `session` are one name.
fn fold_cookie_name(name: &[u8]) -> Vec<u8> {
    let name = trim_ows(name);
    let mut decoded = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        let b = match (name[i], name.get(i + 1..i + 3)) {
            (b'%', Some(&[h, l])) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                i += 2;
                (hex_value(h) << 4) | hex_value(l)
            }
            (b'+', _) => b' ',
            (b, _) => b,
        };
        decoded.push(b);
        i += 1;
    }
    trim_ows(&decoded)
        .iter()
        .map(|&b| fold_name_char(b))
        .collect()
}

fn fold_name_char(b: u8) -> u8 {
    match b.to_ascii_lowercase() {
        b'.' | b' ' => b'_',
        c => c,
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        _ => (b | 0x20).wrapping_sub(b'a').wrapping_add(10),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn strips_what_nginx_reads_after_a_comma() {
        let session = names(&["session"]);
        // nginx 1.22 and 1.28 read $cookie_session = "x" here.
        assert_eq!(
            cookie_value(b"theme=dark,session=x", b"session"),
            Some(&b"x"[..])
        );
        assert_eq!(
            strip_cookies(b"theme=dark,session=x; lang=fr", &session).as_deref(),
            Some(&b"lang=fr"[..])
        );
        assert_eq!(
            strip_cookies(b"theme=dark, Session =x", &session).as_deref(),
            Some(&b""[..])
        );
        // nginx reads "x,theme=dark" as the value: the whole piece goes.
        assert_eq!(
            strip_cookies(b"session=x,theme=dark;lang=fr", &session).as_deref(),
            Some(&b"lang=fr"[..])
        );
        // Other readings: a tab, %XX, '.' for '_'.
        assert_eq!(
            strip_cookies(b"lang=fr;\tsession=x", &session).as_deref(),
            Some(&b"lang=fr"[..])
        );
        assert_eq!(
            strip_cookies(b"sess%69on=x; lang=fr", &session).as_deref(),
            Some(&b"lang=fr"[..])
        );
        let sid = names(&["session_id"]);
        assert_eq!(
            strip_cookies(b"session.id=x; session id=y; lang=fr", &sid).as_deref(),
            Some(&b"lang=fr"[..])
        );
        // A quoted value holding ';' is cut where nginx cuts it.
        assert_eq!(
            strip_cookies(b"a=\"x;session=T\"; lang=fr", &session).as_deref(),
            Some(&b"a=\"x; lang=fr"[..])
        );
        // Names that only contain the session's are not it.
        assert_eq!(
            strip_cookies(b"theme=dark,xsession=1,session_old=2", &session),
            None
        );
    }

    #[test]
    fn finds_a_cookie_as_nginx_does() {
        assert_eq!(
            cookie_value(b"a=1; session=xyz; b=2", b"session"),
            Some(&b"xyz"[..])
        );
        assert_eq!(
            cookie_value(b"session=first;session=second", b"session"),
            Some(&b"first"[..])
        );
        assert_eq!(cookie_value(b"xsession=1; session_old=2", b"session"), None);
        // Case-insensitive, like nginx's $cookie_NAME.
        assert_eq!(cookie_value(b"Session=1", b"session"), Some(&b"1"[..]));
        assert_eq!(cookie_value(b"a=1;SESSION=2", b"session"), Some(&b"2"[..]));
        assert_eq!(cookie_value(b"session=", b"session"), Some(&b""[..]));
        assert_eq!(cookie_value(b"session", b"session"), None);
        // Spaces around '=' are skipped, the value keeps what runs to ';', commas included.
        assert_eq!(
            cookie_value(b"a=1;  session  =  v w ; b=2", b"session"),
            Some(&b"v w "[..])
        );
        assert_eq!(
            cookie_value(b"session=a,session=b", b"session"),
            Some(&b"a,session=b"[..])
        );
        assert_eq!(cookie_value(b"x=1,session=v", b"session"), Some(&b"v"[..]));
        // Only spaces are skipped before a name, not tabs.
        assert_eq!(cookie_value(b"a=1;\tsession=v", b"session"), None);
        // Quotes mean nothing to nginx.
        assert_eq!(
            cookie_value(b"a=\"x;session=T\"; session=R", b"session"),
            Some(&b"T\""[..])
        );
        // nginx's quirk: the ';' right after a bare name is consumed, and the next
        // cookie with it.
        assert_eq!(cookie_value(b"session;session=v", b"session"), None);
        assert_eq!(
            cookie_value(b"session;a=1;session=v", b"session"),
            Some(&b"v"[..])
        );
    }

    #[test]
    fn the_shortcuts_of_piece_is_cookie_change_no_answer() {
        // The plain reading: decode the piece's name whenever it holds '%' or '+'.
        let plain = |piece: &[u8], name: &[u8]| {
            let Some(eq) = piece.iter().position(|&b| b == b'=') else {
                return false;
            };
            let raw = trim_ows(&piece[..eq]);
            let raw: Vec<u8> = if needs_decoding(raw) {
                fold_cookie_name(raw)
            } else {
                raw.to_vec()
            };
            raw.len() == name.len()
                && raw
                    .iter()
                    .zip(name)
                    .all(|(&a, &b)| fold_name_char(a) == fold_name_char(b))
        };
        let names: [&[u8]; 7] = [
            b"session",
            b"SESSION",
            b"s.id",
            b"a+b",
            b"x%25y",
            b"sess%69on",
            b" s ",
        ];
        let pieces: [&[u8]; 16] = [
            b"session=1",
            b"Session=1",
            b" session =1",
            b"sess%69on=1",
            b"sess%6=1",
            b"s+id=1",
            b"s_id=1",
            b"a b=1",
            b"a+b=1",
            b"x%y=1",
            b"x%25y=1",
            b"x%2525y=1",
            b"s=1",
            b"%73ession=1",
            b"session",
            b"sessions=1",
        ];
        for name in names {
            let folded = comparable_name(name);
            for piece in pieces {
                assert_eq!(
                    piece_is_cookie(piece, &folded),
                    plain(piece, &folded),
                    "{:?} {:?}",
                    String::from_utf8_lossy(piece),
                    String::from_utf8_lossy(name)
                );
            }
        }
    }

    #[test]
    fn counts_every_reading_of_a_cookie() {
        assert_eq!(cookie_count(b"session=T; session=REAL", b"session"), 2);
        assert_eq!(cookie_count(b"session=T", b"session"), 1);
        assert_eq!(cookie_count(b"a=1; b=2", b"session"), 0);
        assert_eq!(cookie_count(b"Session=T; session=REAL", b"session"), 2);
        assert_eq!(cookie_count(b"session=T,session=REAL", b"session"), 2);
        assert_eq!(cookie_count(b"session=T;\tsession=REAL", b"session"), 2);
        assert_eq!(cookie_count(b"sess%69on=T; session=REAL", b"session"), 2);
        assert_eq!(cookie_count(b"session =T; session= REAL", b"session"), 2);
        assert_eq!(
            cookie_count(b"session_id=T; session.id=R", b"session_id"),
            2
        );
        assert_eq!(cookie_count(b"a=\"x;session=T\"; session=R", b"session"), 2);
        // A bare name is no cookie for nginx (and an empty one for PHP).
        assert_eq!(cookie_count(b"session; session=REAL", b"session"), 1);
        assert_eq!(
            cookie_count(b"xsession=1; session_old=2; sessions=3", b"session"),
            0
        );
        // Names are folded on both sides.
        assert_eq!(cookie_count(b"session=1", b"SESSION"), 1);
    }

    #[test]
    fn stripped_lines_keep_nothing_nginx_would_read() {
        let lines: [&[u8]; 8] = [
            b"theme=dark,session=x",
            b"session;session=v;a=1",
            b"a=1,, session = 2",
            b"a=\"x;session=T\"; b=2",
            b"SESSION=1,b=2;c=3",
            b"x=%2c;session=1",
            b"session=1;session=2,session=3",
            b"lang=fr; ; session=",
        ];
        for line in lines {
            let rest = strip_cookies(line, &names(&["session"])).unwrap();
            assert_eq!(cookie_value(&rest, b"session"), None, "{line:?}");
            assert_eq!(cookie_count(&rest, b"session"), 0, "{line:?}");
        }
    }

    #[test]
    fn long_lines_and_encoded_names() {
        let long = format!(
            "a={};session=v;b={},session=w",
            "x".repeat(40),
            "y".repeat(30)
        );
        assert_eq!(cookie_value(long.as_bytes(), b"session"), Some(&b"v"[..]));
        assert_eq!(cookie_count(long.as_bytes(), b"session"), 2);
        assert_eq!(cookie_count(long.as_bytes(), b"Sess%69on"), 2);
        assert_eq!(cookie_count(b"my+id=1; my.id=2; MY_ID=3", b" my id "), 3);
        assert_eq!(
            strip_cookies(b"my+id=1; k=2", &names(&["my%20id"])).as_deref(),
            Some(&b"k=2"[..])
        );
    }
}
