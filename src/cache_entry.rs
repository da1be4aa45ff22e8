//! Cache bookkeeping that needs no nginx: how long an answer may be kept, the keyed hash
//! that stands for a credential, and the byte layout of a cached answer.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::decision::Answer;

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

/// Serialises what a cached answer needs besides its status: content type, relayed
/// headers, body. A 2xx answer stores its body alone behind a small header, so a 200-byte
/// identity stays within a 256-byte slab slot.
pub fn encode(answer: &Answer) -> Vec<u8> {
    let mut out = Vec::with_capacity(answer.body.len() + 8);
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
    let mut rest = bytes;
    let content_type = take_field(&mut rest)?.to_vec();
    let (&count, tail) = rest.split_first()?;
    rest = tail;
    let mut relay_headers = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let name = take_field(&mut rest)?.to_vec();
        let value = take_field(&mut rest)?.to_vec();
        relay_headers.push((name, value));
    }
    Some(Answer {
        status,
        failure: None,
        body: rest.to_vec(),
        content_type,
        relay_headers,
        cache_control: Vec::new(),
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
        // RFC 4231 test case 2.
        let mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        let tag: [u8; 32] = {
            let mut m = mac;
            m.update(b"what do ya want for nothing?");
            m.finalize().into_bytes().into()
        };
        assert_eq!(tag[..4], [0x5b, 0xdc, 0xc1, 0x46]);
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
        assert_eq!(bytes.len(), ok.body.len() + 3, "2xx keeps only the body");
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
    fn decoding_rejects_truncation() {
        let denied = Answer {
            status: 401,
            relay_headers: vec![(b"A".to_vec(), b"B".to_vec())],
            ..Answer::default()
        };
        let bytes = encode(&denied);
        for cut in 0..bytes.len() {
            assert!(decode(401, &bytes[..cut]).is_none(), "cut at {cut}");
        }
    }
}
