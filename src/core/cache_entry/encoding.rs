//! The byte layout of a cached answer in shared memory.

use super::vary::{parse_vary, Vary};
use super::TAG_LEN;
use crate::decision::Answer;

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
