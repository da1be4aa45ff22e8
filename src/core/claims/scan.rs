//! The fast path of `Claims::parse`: one pass over the body that validates it as JSON the
//! way serde_json does and records where each top-level key and value lies, without
//! building anything or allocating. It answers only when sure: a body it does not take
//! (any error, an escaped top-level key, more than `INLINE` fields, nesting deeper than
//! 64) goes to the serde_json path, which also says why a body is refused. So a body
//! taken here is one serde_json takes, with the same spans; the `claims` fuzz target
//! checks that against the serde_json path on arbitrary input.

/// How many top-level fields the fast path keeps in place (identities hold a handful).
pub(super) const INLINE: usize = 16;

/// A top-level field: the key's text between its quotes and the value's raw JSON text,
/// as byte offsets into the body.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Span {
    pub key: (u32, u32),
    pub value: (u32, u32),
}

#[derive(Debug)]
pub(super) struct Spans {
    pub len: usize,
    pub spans: [Span; INLINE],
}

/// The top-level fields of `b` (already valid UTF-8), or `None` when not sure it is a
/// JSON object serde_json would take.
pub(super) fn scan(b: &[u8]) -> Option<Spans> {
    if u32::try_from(b.len()).is_err() {
        return None;
    }
    let mut out = Spans {
        len: 0,
        spans: [Span::default(); INLINE],
    };
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let key_start = i + 1;
            // Escaped keys need decoding: the serde_json path does that.
            let key_end = string_end(b, key_start, false)?;
            i = ws(b, key_end + 1);
            if b.get(i) != Some(&b':') {
                return None;
            }
            let value_start = ws(b, i + 1);
            i = value_end(b, value_start)?;
            let slot = out.spans.get_mut(out.len)?;
            // Offsets fit: the body's length was checked above.
            *slot = Span {
                key: (key_start as u32, key_end as u32),
                value: (value_start as u32, i as u32),
            };
            out.len += 1;
            i = ws(b, i);
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (ws(b, i) == b.len()).then_some(out)
}

/// Past JSON whitespace (serde_json's set: space, LF, tab, CR).
pub(super) fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A mask with the high bit of each byte of the word below `n` (n <= 128) set, except
/// that bytes above the lowest one flagged may be flagged wrongly: the lowest flag is
/// exact, and the mask is zero exactly when no byte is below `n`.
fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS
}

/// `below(x, 1)`: the zero bytes of the word.
fn zero_bytes(x: u64) -> u64 {
    below(x, 1)
}

/// The index of the closing quote of the string whose text starts at `i`. Control bytes
/// are refused (as serde_json does); escapes are checked as serde_json's `ignore_str`
/// does (any `\uXXXX`), or refused when `escapes` is false.
fn string_end(b: &[u8], mut i: usize, escapes: bool) -> Option<usize> {
    loop {
        // Eight bytes at a time to the first quote, backslash or control byte: most of a
        // body is string text. The lowest flagged byte of each mask is exact, so the
        // lowest of all three is the first such byte.
        while let Some(word) = b.get(i..i + 8) {
            let x = u64::from_le_bytes(word.try_into().ok()?);
            let m = zero_bytes(x ^ (ONES * u64::from(b'"')))
                | zero_bytes(x ^ (ONES * u64::from(b'\\')))
                | below(x, 0x20);
            if m != 0 {
                i += (m.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        loop {
            match *b.get(i)? {
                b'"' => return Some(i),
                b'\\' if escapes => {
                    i = escape_end(b, i + 1)?;
                    break;
                }
                b'\\' | 0..=0x1f => return None,
                _ => i += 1,
            }
        }
    }
}

/// Past the escape whose letter is at `i`.
fn escape_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(i + 1),
        b'u' => b
            .get(i + 1..i + 5)?
            .iter()
            .all(u8::is_ascii_hexdigit)
            .then_some(i + 5),
        _ => None,
    }
}

/// Past the value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'{' | b'[' => nested_end(b, i),
        _ => scalar_end(b, i),
    }
}

fn scalar_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i + 1, true).map(|e| e + 1),
        b't' => literal_end(b, i, b"true"),
        b'f' => literal_end(b, i, b"false"),
        b'n' => literal_end(b, i, b"null"),
        b'-' | b'0'..=b'9' => number_end(b, i),
        _ => None,
    }
}

fn literal_end(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b.get(i..)?.starts_with(word).then_some(i + word.len())
}

/// Past an RFC 8259 number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match *b.get(i)? {
        // serde_json refuses a leading zero followed by a digit.
        b'0' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => return None,
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(b, i + 1),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let end = digits(b, i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let end = digits(b, i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

/// Past the array or object opening at `i`, without recursion: the open containers are
/// bits of a word (1 for an object), so nesting deeper than 64 is left to serde_json.
fn nested_end(b: &[u8], mut i: usize) -> Option<usize> {
    let mut stack: u64 = 0;
    let mut depth = 0u32;
    loop {
        // `i` is at an opening bracket.
        let object = *b.get(i)? == b'{';
        if depth == 64 {
            return None;
        }
        stack = (stack << 1) | u64::from(object);
        depth += 1;
        i = ws(b, i + 1);
        let close = if object { b'}' } else { b']' };
        let mut empty = b.get(i) == Some(&close);
        loop {
            if empty {
                empty = false;
                // Close the innermost container.
                i += 1;
                stack >>= 1;
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            } else {
                // An element of the innermost container.
                if stack & 1 == 1 {
                    if b.get(i) != Some(&b'"') {
                        return None;
                    }
                    i = ws(b, string_end(b, i + 1, true)? + 1);
                    if b.get(i) != Some(&b':') {
                        return None;
                    }
                    i = ws(b, i + 1);
                }
                if let Some(b'{' | b'[') = b.get(i) {
                    break;
                }
                i = scalar_end(b, i)?;
            }
            // After a value: a comma, or the innermost container's closer.
            i = ws(b, i);
            let close = if stack & 1 == 1 { b'}' } else { b']' };
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(&c) if c == close => empty = true,
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Option<Vec<(&str, &str)>> {
        let s = scan(body.as_bytes())?;
        Some(
            s.spans[..s.len]
                .iter()
                .map(|f| {
                    (
                        &body[f.key.0 as usize..f.key.1 as usize],
                        &body[f.value.0 as usize..f.value.1 as usize],
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn takes_plain_objects() {
        assert_eq!(
            fields(
                r#" { "a" : 1 , "b":"x\"y\u00e9" ,"c":[1,{"d":[]},{}],"e":-0.5e+3,"f":null,"g":true,"h":false } "#
            ),
            Some(vec![
                ("a", "1"),
                ("b", r#""x\"y\u00e9""#),
                ("c", r#"[1,{"d":[]},{}]"#),
                ("e", "-0.5e+3"),
                ("f", "null"),
                ("g", "true"),
                ("h", "false"),
            ])
        );
        assert_eq!(fields("{}"), Some(vec![]));
        assert_eq!(
            fields(
                r#"{"long string value, more than eight bytes":"ééé plain text of some length"}"#
            ),
            Some(vec![(
                "long string value, more than eight bytes",
                r#""ééé plain text of some length""#
            )])
        );
    }

    #[test]
    fn leaves_what_it_is_not_sure_of_to_serde_json() {
        for body in [
            "",
            "[]",
            "1",
            "{",
            "{}x",
            r#"{"a":1,}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":{1:2}}"#,
            r#"{"a":"x\q"}"#,
            r#"{"a":"x\u12"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"\u0061":1}"#,
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
            r#"{"a" 1}"#,
            r#"{"a":1 "b":2}"#,
        ] {
            assert!(fields(body).is_none(), "{body}");
        }
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(65), "]".repeat(65));
        assert!(fields(&deep).is_none());
        let ok = format!(r#"{{"a":{}{}}}"#, "[".repeat(64), "]".repeat(64));
        assert!(fields(&ok).is_some());
        let many: Vec<String> = (0..=INLINE).map(|n| format!("\"k{n}\":{n}")).collect();
        assert!(fields(&format!("{{{}}}", many[..INLINE].join(","))).is_some());
        assert!(fields(&format!("{{{}}}", many.join(","))).is_none());
    }

    #[test]
    fn strings_end_at_the_first_quote_wherever_it_lies_in_a_word() {
        for n in 0..20 {
            for (stop, end) in [
                ("\"", Some(n)),
                ("\\", None),
                ("\n", None),
                ("\u{7f}\"", Some(n + 1)),
            ] {
                let text = format!(
                    "{}{stop}{}\"",
                    "é".repeat(n / 2) + &"a".repeat(n % 2),
                    "b".repeat(9)
                );
                assert_eq!(string_end(text.as_bytes(), 0, false), end, "{text:?}");
            }
        }
        assert_eq!(string_end(br#"ab\"c\u00e9""#, 0, true), Some(11));
        assert_eq!(string_end(b"abc", 0, true), None);
    }
}
