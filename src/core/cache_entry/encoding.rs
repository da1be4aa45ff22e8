//! The byte layout of a cached answer in shared memory.

use super::vary::{parse_vary, Vary};
use super::TAG_LEN;
use crate::decision::Answer;

/// The first byte of every encoded answer: bytes from another layout never decode, so an
/// entry an older module wrote into a zone kept across a reload is a miss, not misread.
/// 0xA3 added the answer headers (`$identity_answer_header_NAME`).
const FORMAT: u8 = 0xA3;

/// Serialises what a cached answer needs besides its status: content type, relayed
/// headers, the `Vary` names and digest, the kept answer headers, body. A 2xx answer
/// without `Vary` or answer headers stores its body behind 9 bytes, so a 200-byte
/// identity stays within a 256-byte slab slot.
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
    push_pairs(&mut out, headers);
    match parse_vary(&answer.vary) {
        Vary::Headers(names) => push_field(&mut out, &names.join(&b',')),
        // Never stored (ttl), and if it were, it would not decode.
        Vary::Uncacheable => push_field(&mut out, b"*"),
    }
    push_field(&mut out, &answer.vary_digest);
    // Only a 2xx's are ever read; `answer_headers::keep` bounds each value to a field.
    let kept = if relayed {
        &[][..]
    } else {
        &answer.answer_headers[..]
    };
    push_pairs(&mut out, kept);
    out.extend_from_slice(&answer.body);
    out
}

/// At most 255 pairs: a kept list cut short no longer `covers` the referenced names, so
/// such an entry is a miss rather than a wrong value.
fn push_pairs(out: &mut Vec<u8>, pairs: &[(Vec<u8>, Vec<u8>)]) {
    out.push(pairs.len().min(255) as u8);
    for (name, value) in pairs.iter().take(255) {
        push_field(out, name);
        push_field(out, value);
    }
}

fn take_pairs(rest: &mut &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let (&count, tail) = rest.split_first()?;
    *rest = tail;
    let mut pairs = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let name = take_field(rest)?.to_vec();
        let value = take_field(rest)?.to_vec();
        pairs.push((name, value));
    }
    Some(pairs)
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
    let relay_headers = take_pairs(&mut rest)?;
    let vary = take_field(&mut rest)?.to_vec();
    let vary_digest = take_field(&mut rest)?.to_vec();
    match parse_vary(&vary) {
        Vary::Headers(names) if names.is_empty() || vary_digest.len() == TAG_LEN => {}
        _ => return None,
    }
    let answer_headers = take_pairs(&mut rest)?;
    Some(Answer {
        status,
        failure: None,
        body: rest.to_vec(),
        content_type,
        relay_headers,
        cache_control: Vec::new(),
        vary,
        vary_digest,
        answer_headers,
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
        assert_eq!(bytes.len(), ok.body.len() + 9, "2xx keeps only the body");
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
    fn answer_headers_round_trip_for_2xx_only() {
        let kept = vec![
            (b"remote_user".to_vec(), b"alice".to_vec()),
            (b"remote_email".to_vec(), Vec::new()),
        ];
        let ok = Answer {
            status: 202,
            answer_headers: kept.clone(),
            ..Answer::default()
        };
        let back = decode(202, &encode(&ok)).unwrap();
        assert_eq!(back.answer_headers, kept);
        assert!(back.body.is_empty());
        let denied = Answer {
            status: 401,
            answer_headers: kept,
            ..Answer::default()
        };
        assert!(decode(401, &encode(&denied))
            .unwrap()
            .answer_headers
            .is_empty());
        // The previous layout (0xA2) is not read as this one.
        let mut old = encode(&ok);
        old[0] = 0xA2;
        assert!(decode(202, &old).is_none());
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
        let ok = Answer {
            status: 200,
            answer_headers: vec![(b"remote_user".to_vec(), b"alice".to_vec())],
            ..Answer::default()
        };
        let bytes = encode(&ok);
        for cut in 0..bytes.len() {
            assert!(decode(200, &bytes[..cut]).is_none(), "cut at {cut}");
        }
    }
}
