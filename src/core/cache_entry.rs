//! Cache bookkeeping that needs no nginx: how long an answer may be kept, the keyed hash
//! that stands for a question and a credential, what a `Vary` answer depends on, and the
//! byte layout of a cached answer.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::decision::Answer;
use crate::header::is_withheld_from_subrequest;

/// The length of a cache key: an HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;

/// One `identity_cache_valid` rule: statuses `min..=max` are kept `ttl` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidRule {
    pub min: u16,
    pub max: u16,
    pub ttl: u32,
}

/// `2xx 60s` and `401 403 5s`, the defaults when no `identity_cache_valid` is set.
pub const DEFAULT_VALID: [ValidRule; 3] = [
    ValidRule {
        min: 200,
        max: 299,
        ttl: 60,
    },
    ValidRule {
        min: 401,
        max: 401,
        ttl: 5,
    },
    ValidRule {
        min: 403,
        max: 403,
        ttl: 5,
    },
];

/// Parses one status argument of `identity_cache_valid`: `200`, `2xx`, `4xx` or `any`.
pub fn parse_status_range(arg: &str) -> Option<(u16, u16)> {
    if arg.eq_ignore_ascii_case("any") {
        return Some((100, 599));
    }
    if let Some(first) = arg.strip_suffix("xx").or_else(|| arg.strip_suffix("XX")) {
        let d: u16 = first.parse().ok()?;
        return (1..=4).contains(&d).then_some((d * 100, d * 100 + 99));
    }
    let code: u16 = arg.parse().ok()?;
    // 5xx and errors are never cached.
    (100..=499).contains(&code).then_some((code, code))
}

/// The seconds an answer of `status` may be kept: the first matching rule, lowered (never
/// raised) by the user service's `Cache-Control`. `None` means "do not cache".
pub fn ttl_for(rules: &[ValidRule], status: u16, cache_control: &[u8]) -> Option<u32> {
    if status >= 500 {
        return None;
    }
    let rule = rules.iter().find(|r| (r.min..=r.max).contains(&status))?;
    let mut ttl = rule.ttl;
    for directive in cache_control.split(|&b| b == b',') {
        let directive = directive.trim_ascii();
        if directive.eq_ignore_ascii_case(b"no-store") {
            return None;
        }
        if let Some(value) = strip_prefix_ci(directive, b"max-age=") {
            let value = value.trim_ascii();
            let age = core::str::from_utf8(value).ok()?.parse::<u64>().ok()?;
            ttl = ttl.min(u32::try_from(age).unwrap_or(u32::MAX));
        }
    }
    (ttl > 0).then_some(ttl)
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// Turns credentials into cache keys with a zone's secret, so no credential is ever
/// written to shared memory. The keyed state is computed once and cloned per key.
#[derive(Clone)]
pub struct KeyHasher(Hmac<Sha256>);

impl KeyHasher {
    /// `None` only if the HMAC implementation refused the key, which it does for no length.
    pub fn new(secret: &[u8; 32]) -> Option<Self> {
        Hmac::<Sha256>::new_from_slice(secret).ok().map(KeyHasher)
    }

    pub fn tag(&self, credential: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.0.clone();
        mac.update(credential);
        mac.finalize().into_bytes().into()
    }
}

/// A user-service question: the `identity_request` URI as asked from one `server{}`
/// (named by its `server_name`), since the same URI in two servers can be two internal
/// locations that ask two user services. Length-prefixed like `key_input`.
pub fn question(server_name: &[u8], uri: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + server_name.len() + uri.len());
    out.extend_from_slice(&(server_name.len() as u64).to_le_bytes());
    out.extend_from_slice(server_name);
    out.extend_from_slice(uri);
    out
}

/// The bytes a cache key is the keyed hash of: the user-service question (the
/// `identity_request` URI, with its arguments if it has any) and the credential. An entry
/// answers one question for one credential, so two locations that ask different user
/// services (or ask differently) through one zone never share entries. The question's
/// length goes first, so no two different pairs give the same bytes (`"/a"` + `"b/c"` is
/// not `"/ab"` + `"/c"`); the leading byte keeps these inputs apart from any other input
/// hashed with the zone's secret.
pub fn key_input(question: &[u8], credential: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + question.len() + credential.len());
    out.push(b'K');
    out.extend_from_slice(&(question.len() as u64).to_le_bytes());
    out.extend_from_slice(question);
    out.extend_from_slice(credential);
    out
}

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

/// The first byte of every encoded answer: bytes from another layout never decode.
const FORMAT: u8 = 0xA2;

/// Serialises what a cached answer needs besides its status: content type, relayed
/// headers, the `Vary` names and digest, body. A 2xx answer without `Vary` stores its
/// body behind 8 bytes, so a 200-byte identity stays within a 256-byte slab slot.
pub fn encode(answer: &Answer) -> Vec<u8> {
    let mut out = Vec::with_capacity(answer.body.len() + 8);
    out.push(FORMAT);
    let relayed = !(200..300).contains(&answer.status);
    let (ct, headers) = if relayed {
        (&answer.content_type[..], &answer.relay_headers[..])
    } else {
        (&[][..], &[][..])
    };
    push_field(&mut out, ct);
    out.push(headers.len().min(255) as u8);
    for (name, value) in headers.iter().take(255) {
        push_field(&mut out, name);
        push_field(&mut out, value);
    }
    match parse_vary(&answer.vary) {
        Vary::Headers(names) => push_field(&mut out, &names.join(&b',')),
        // Never stored (ttl), and if it were, it would not decode.
        Vary::Uncacheable => push_field(&mut out, b"*"),
    }
    push_field(&mut out, &answer.vary_digest);
    out.extend_from_slice(&answer.body);
    out
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    let field = &field[..field.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(field.len() as u16).to_le_bytes());
    out.extend_from_slice(field);
}

/// The inverse of `encode`; `None` for bytes `encode` did not write.
pub fn decode(status: u16, bytes: &[u8]) -> Option<Answer> {
    let (&format, mut rest) = bytes.split_first()?;
    if format != FORMAT {
        return None;
    }
    let content_type = take_field(&mut rest)?.to_vec();
    let (&count, tail) = rest.split_first()?;
    rest = tail;
    let mut relay_headers = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let name = take_field(&mut rest)?.to_vec();
        let value = take_field(&mut rest)?.to_vec();
        relay_headers.push((name, value));
    }
    let vary = take_field(&mut rest)?.to_vec();
    let vary_digest = take_field(&mut rest)?.to_vec();
    match parse_vary(&vary) {
        Vary::Headers(names) if names.is_empty() || vary_digest.len() == TAG_LEN => {}
        _ => return None,
    }
    Some(Answer {
        status,
        failure: None,
        body: rest.to_vec(),
        content_type,
        relay_headers,
        cache_control: Vec::new(),
        vary,
        vary_digest,
    })
}

fn take_field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u16::from_le_bytes([*rest.first()?, *rest.get(1)?]) as usize;
    let field = rest.get(2..2 + len)?;
    *rest = &rest[2 + len..];
    Some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges() {
        assert_eq!(parse_status_range("200"), Some((200, 200)));
        assert_eq!(parse_status_range("2xx"), Some((200, 299)));
        assert_eq!(parse_status_range("any"), Some((100, 599)));
        assert_eq!(parse_status_range("500"), None);
        assert_eq!(parse_status_range("5xx"), None);
        assert_eq!(parse_status_range("abc"), None);
    }

    #[test]
    fn ttl_follows_rules_and_cache_control() {
        let rules = DEFAULT_VALID;
        assert_eq!(ttl_for(&rules, 200, b""), Some(60));
        assert_eq!(ttl_for(&rules, 204, b""), Some(60));
        assert_eq!(ttl_for(&rules, 401, b""), Some(5));
        assert_eq!(ttl_for(&rules, 404, b""), None);
        assert_eq!(ttl_for(&rules, 302, b""), None);
        assert_eq!(ttl_for(&rules, 500, b""), None);
        assert_eq!(ttl_for(&rules, 200, b"private, max-age=10"), Some(10));
        assert_eq!(
            ttl_for(&rules, 200, b"MAX-AGE=3600"),
            Some(60),
            "never raised"
        );
        assert_eq!(ttl_for(&rules, 200, b"max-age=0"), None);
        assert_eq!(ttl_for(&rules, 200, b"no-store"), None);
        assert_eq!(ttl_for(&rules, 200, b"max-age=5, No-Store"), None);
        assert_eq!(ttl_for(&rules, 200, b"max-age=junk"), None);
        let any = [ValidRule {
            min: 100,
            max: 599,
            ttl: 9,
        }];
        assert_eq!(ttl_for(&any, 503, b""), None, "5xx never cached");
    }

    #[test]
    fn tags_depend_on_secret_and_credential() {
        let a = KeyHasher::new(&[1; 32]).unwrap();
        let b = KeyHasher::new(&[2; 32]).unwrap();
        assert_eq!(a.tag(b"s1"), a.tag(b"s1"));
        assert_ne!(a.tag(b"s1"), a.tag(b"s2"));
        assert_ne!(a.tag(b"s1"), b.tag(b"s1"));
    }

    #[test]
    fn tags_are_hmac_sha256_of_the_credential() {
        // RFC 4231 test case 2 through KeyHasher itself. HMAC pads a key shorter than
        // SHA-256's 64-byte block with zeros, so "Jefe" zero-padded to the zone secret's
        // 32 bytes is the same key.
        let mut secret = [0u8; 32];
        secret[..4].copy_from_slice(b"Jefe");
        let tag = KeyHasher::new(&secret)
            .unwrap()
            .tag(b"what do ya want for nothing?");
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let got: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn key_input_tells_every_pair_apart() {
        assert_ne!(key_input(b"/a", b"b/c"), key_input(b"/ab", b"/c"));
        assert_ne!(key_input(b"", b"/xs1"), key_input(b"/x", b"s1"));
        assert_ne!(key_input(b"/shop", b"s1"), key_input(b"/admin", b"s1"));
        assert_eq!(key_input(b"/shop", b"s1"), key_input(b"/shop", b"s1"));
        // Every split of the same bytes into (question, credential) is a different input.
        let joined = b"/_identity?x=1session";
        let mut seen = std::collections::HashSet::new();
        for cut in 0..=joined.len() {
            let (q, c) = joined.split_at(cut);
            assert!(seen.insert(key_input(q, c)), "cut at {cut}");
        }
        // A question is a server and a URI, told apart the same way.
        assert_ne!(question(b"a", b"/b"), question(b"a/", b"b"));
        assert_ne!(question(b"shop", b"/_id"), question(b"admin", b"/_id"));
        assert_ne!(
            key_input(&question(b"s", b"/q"), b"c"),
            key_input(&question(b"s", b"/"), b"qc")
        );
        // And the question can be read back: the encoding is injective.
        let input = key_input(b"/a?b=c", b"tok");
        let len = u64::from_le_bytes(input[1..9].try_into().unwrap()) as usize;
        assert_eq!(&input[9..9 + len], b"/a?b=c");
        assert_eq!(&input[9 + len..], b"tok");
    }

    #[test]
    fn encoding_round_trips() {
        let ok = Answer {
            status: 200,
            body: br#"{"id":"alice"}"#.to_vec(),
            content_type: b"application/json".to_vec(),
            ..Answer::default()
        };
        let bytes = encode(&ok);
        assert_eq!(bytes.len(), ok.body.len() + 8, "2xx keeps only the body");
        let back = decode(200, &bytes).unwrap();
        assert_eq!(back.body, ok.body);

        let denied = Answer {
            status: 401,
            body: b"expired".to_vec(),
            content_type: b"text/plain".to_vec(),
            relay_headers: vec![(b"WWW-Authenticate".to_vec(), b"Cookie".to_vec())],
            ..Answer::default()
        };
        let back = decode(401, &encode(&denied)).unwrap();
        assert_eq!(back.status, 401);
        assert_eq!(back.body, denied.body);
        assert_eq!(back.content_type, denied.content_type);
        assert_eq!(back.relay_headers, denied.relay_headers);
    }

    #[test]
    fn vary_round_trips() {
        let varied = Answer {
            status: 200,
            body: b"{}".to_vec(),
            vary: b"X-Tenant, accept-language,Accept-Language".to_vec(),
            vary_digest: vec![7; TAG_LEN],
            ..Answer::default()
        };
        let back = decode(200, &encode(&varied)).unwrap();
        assert_eq!(back.vary, b"accept-language,x-tenant");
        assert_eq!(back.vary_digest, varied.vary_digest);
        assert_eq!(back.body, varied.body);
        assert_eq!(parse_vary(&back.vary), parse_vary(&varied.vary));
        // Names without their digest are not an entry that can be matched.
        let no_digest = Answer {
            vary_digest: Vec::new(),
            ..varied
        };
        assert!(decode(200, &encode(&no_digest)).is_none());
        // Nor is `*`, and nor is a blob of another layout.
        let star = Answer {
            status: 200,
            vary: b"*".to_vec(),
            ..Answer::default()
        };
        assert!(decode(200, &encode(&star)).is_none());
        assert!(decode(200, &[0, 0, 0, b'{', b'}']).is_none());
    }

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

    #[test]
    fn decoding_rejects_truncation() {
        let denied = Answer {
            status: 401,
            relay_headers: vec![(b"A".to_vec(), b"B".to_vec())],
            vary: b"Accept".to_vec(),
            vary_digest: vec![1; TAG_LEN],
            ..Answer::default()
        };
        let bytes = encode(&denied);
        for cut in 0..bytes.len() {
            assert!(decode(401, &bytes[..cut]).is_none(), "cut at {cut}");
        }
    }
}
