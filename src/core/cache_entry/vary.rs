//! What an answer's `Vary` means for caching it, and the bytes that stand for a
//! request's values of the headers it names.

use crate::header::is_withheld_from_subrequest;

/// The most bytes of header names a `Vary` may list for its answer to be cached.
const MAX_VARY: usize = 1024;

/// What an answer's `Vary` means for caching it.
#[derive(Debug, PartialEq, Eq)]
pub enum Vary {
    /// The answer depends on these request headers: lowercase, sorted, each once; none
    /// when the user service sent no `Vary`.
    Headers(Vec<Vec<u8>>),
    /// `Vary: *` (the answer depends on more than headers), or a list too long to keep:
    /// the answer is never cached.
    Uncacheable,
}

/// Reads a `Vary` value (several lines joined with commas). Names compare
/// case-insensitively and their order does not matter.
pub fn parse_vary(vary: &[u8]) -> Vary {
    // The usual answer has no `Vary`: every cache hit reads it (decode, vary_matches).
    if vary.is_empty() {
        return Vary::Headers(Vec::new());
    }
    let mut names = Vec::new();
    for name in vary.split(|&b| b == b',') {
        let name = name.trim_ascii();
        if name == b"*" {
            return Vary::Uncacheable;
        }
        if !name.is_empty() {
            names.push(name.to_ascii_lowercase());
        }
    }
    names.sort();
    names.dedup();
    if names.iter().map(|n| n.len() + 1).sum::<usize>() > MAX_VARY {
        return Vary::Uncacheable;
    }
    Vary::Headers(names)
}

/// The bytes whose keyed hash stands for a request's values of the `Vary` headers
/// `names` (as `parse_vary` gives them): for each name, every value the request's
/// `headers` hold for it, in order, as the identity subrequest carries them (headers it
/// withholds count as absent). Everything is length-prefixed, so different values never
/// give the same bytes; the leading byte keeps these inputs apart from cache keys.
pub fn vary_input(names: &[Vec<u8>], headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![b'V'];
    for name in names {
        push_long(&mut out, name);
        let values: Vec<&[u8]> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name) && !is_withheld_from_subrequest(n))
            .map(|(_, v)| &v[..])
            .collect();
        out.extend_from_slice(&(values.len() as u64).to_le_bytes());
        for value in values {
            push_long(&mut out, value);
        }
    }
    out
}

fn push_long(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u64).to_le_bytes());
    out.extend_from_slice(field);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache_entry::key_input;

    #[test]
    fn vary_names() {
        assert_eq!(parse_vary(b""), Vary::Headers(vec![]));
        assert_eq!(parse_vary(b" , "), Vary::Headers(vec![]));
        assert_eq!(
            parse_vary(b"X-B, x-a ,X-A"),
            Vary::Headers(vec![b"x-a".to_vec(), b"x-b".to_vec()])
        );
        assert_eq!(parse_vary(b"*"), Vary::Uncacheable);
        assert_eq!(parse_vary(b"Accept, *"), Vary::Uncacheable);
        let long = vec![b'a'; MAX_VARY + 1];
        assert_eq!(parse_vary(&long), Vary::Uncacheable);
    }

    #[test]
    fn vary_input_follows_the_values() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(Vec<u8>, Vec<u8>)> {
            pairs
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect()
        };
        let names = match parse_vary(b"Accept-Language, X-Tenant") {
            Vary::Headers(n) => n,
            Vary::Uncacheable => unreachable!(),
        };
        let input = |pairs: &[(&str, &str)]| vary_input(&names, &h(pairs));
        let en = input(&[("Accept-Language", "en"), ("Cookie", "a=1")]);
        // Other headers and the names' case do not matter; the values do.
        assert_eq!(en, input(&[("accept-language", "en"), ("Cookie", "b=2")]));
        assert_ne!(en, input(&[("Accept-Language", "fr")]));
        assert_ne!(en, input(&[("Accept-Language", "en"), ("X-Tenant", "")]));
        assert_ne!(en, input(&[]));
        // Values never run into each other or into the next name.
        assert_ne!(
            input(&[("Accept-Language", "a"), ("Accept-Language", "b")]),
            input(&[("Accept-Language", "ab")])
        );
        assert_ne!(
            input(&[("Accept-Language", "en"), ("X-Tenant", "t")]),
            input(&[("Accept-Language", "ent")])
        );
        // Headers the subrequest does not carry count as absent.
        let cl = match parse_vary(b"Content-Length") {
            Vary::Headers(n) => n,
            Vary::Uncacheable => unreachable!(),
        };
        assert_eq!(
            vary_input(&cl, &h(&[("Content-Length", "5")])),
            vary_input(&cl, &[])
        );
        // Never the same bytes as a cache key's input.
        assert_ne!(vary_input(&[], &[])[0], key_input(b"", b"")[0]);
    }
}
