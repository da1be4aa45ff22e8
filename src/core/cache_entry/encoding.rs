//! The byte layout of a cached answer in shared memory.

use super::vary::{parse_vary, Vary};
use super::TAG_LEN;
use crate::claims::{Claims, Index, Parsed};
use crate::decision::Answer;

/// The first byte of every encoded answer: bytes from another layout never decode, so an
/// entry an older module wrote into a zone kept across a reload is a miss, not misread.
/// 0xA3 added the answer headers (`$identity_answer_header_NAME`), 0xA4 the claims index.
const FORMAT: u8 = 0xA4;

/// A decoded entry: the answer, and its body's claims as the entry recorded them
/// (`None`: not recorded, parse the body when a claim is read).
pub struct Cached {
    pub answer: Answer,
    pub claims: Option<Parsed>,
}

/// Serialises what a cached answer needs besides its status: content type, relayed
/// headers, the `Vary` names and digest, the kept answer headers, the index of the
/// body's claims (`Claims::index`, so a hit parses no JSON), body. A 2xx answer without
/// `Vary` or answer headers stores its body behind 10 bytes and 5 a claim, so a
/// 200-byte identity of a handful of claims stays within a 256-byte slab slot.
pub fn encode(answer: &Answer) -> Vec<u8> {
    let mut out = Vec::with_capacity(answer.body.len() + 64);
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
    Claims::index(&answer.body, &mut out);
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
    if count == 0 {
        // The usual case (a 2xx without answer headers): skips Vec's out-of-line
        // allocation path, which a hit otherwise enters for every empty list.
        return Some(Vec::new());
    }
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

/// The inverse of `encode`; `None` for bytes `encode` did not write, including a claims
/// index that does not fit the body.
pub fn decode(status: u16, bytes: &[u8]) -> Option<Cached> {
    let (&format, mut rest) = bytes.split_first()?;
    if format != FORMAT {
        return None;
    }
    let content_type = owned(take_field(&mut rest)?);
    let relay_headers = take_pairs(&mut rest)?;
    let vary = owned(take_field(&mut rest)?);
    let vary_digest = owned(take_field(&mut rest)?);
    match parse_vary(&vary) {
        Vary::Headers(names) if names.is_empty() || vary_digest.len() == TAG_LEN => {}
        _ => return None,
    }
    let answer_headers = take_pairs(&mut rest)?;
    let index = Index::take(&mut rest)?;
    // The body is what remains; the index is checked against it before anything is copied.
    let claims = index.claims(rest)?;
    let answer = Answer {
        status,
        failure: None,
        body: rest.to_vec(),
        content_type,
        relay_headers,
        cache_control: Vec::new(),
        vary,
        vary_digest,
        answer_headers,
    };
    Some(Cached { answer, claims })
}

/// `field` as a `Vec`; an empty one without entering Vec's out-of-line allocation path
/// (most fields of a 2xx entry are empty, and a hit decodes them all).
fn owned(field: &[u8]) -> Vec<u8> {
    if field.is_empty() {
        Vec::new()
    } else {
        field.to_vec()
    }
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
    use crate::claims::reference;

    #[test]
    fn encoding_round_trips() {
        let ok = Answer {
            status: 200,
            body: br#"{"id":"alice"}"#.to_vec(),
            content_type: b"application/json".to_vec(),
            ..Answer::default()
        };
        let bytes = encode(&ok);
        // The body and its claims index: the kind, 5 bytes for its one field.
        assert_eq!(
            bytes.len(),
            ok.body.len() + 10 + 5,
            "2xx keeps only the body"
        );
        let back = decode(200, &bytes).unwrap().answer;
        assert_eq!(back.body, ok.body);

        let denied = Answer {
            status: 401,
            body: b"expired".to_vec(),
            content_type: b"text/plain".to_vec(),
            relay_headers: vec![(b"WWW-Authenticate".to_vec(), b"Cookie".to_vec())],
            ..Answer::default()
        };
        let back = decode(401, &encode(&denied)).unwrap().answer;
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
        let back = decode(202, &encode(&ok)).unwrap().answer;
        assert_eq!(back.answer_headers, kept);
        assert!(back.body.is_empty());
        let denied = Answer {
            status: 401,
            answer_headers: kept,
            ..Answer::default()
        };
        assert!(decode(401, &encode(&denied))
            .unwrap()
            .answer
            .answer_headers
            .is_empty());
        // The previous layouts (0xA2, 0xA3 without the claims index) are not read as
        // this one.
        for format in [0xA2, 0xA3] {
            let mut old = encode(&ok);
            old[0] = format;
            assert!(decode(202, &old).is_none());
        }
    }

    /// The identity `make bench` serves: 200 bytes, 5 claims.
    fn bench_identity() -> Vec<u8> {
        let mut body = br#"{"id":"bench-user","name":"Bench User","email":"bench-user@example.com","roles":["admin","dev"],"pad":""#.to_vec();
        body.resize(198, b'x');
        body.extend_from_slice(b"\"}");
        body
    }

    #[test]
    fn a_200_byte_identity_fits_a_256_byte_slab_slot() {
        let ok = Answer {
            status: 200,
            body: bench_identity(),
            ..Answer::default()
        };
        assert_eq!(ok.body.len(), 200);
        let bytes = encode(&ok);
        assert!(bytes.len() <= 256, "{} bytes", bytes.len());
        let back = decode(200, &bytes).unwrap();
        let Some(Ok(claims)) = back.claims else {
            panic!("the claims are indexed");
        };
        assert_eq!(
            claims.get(&back.answer.body, "id").as_deref(),
            Some("bench-user")
        );
        assert_eq!(
            claims.get(&back.answer.body, "roles").as_deref(),
            Some("admin,dev")
        );
    }

    #[test]
    fn claims_come_back_as_parsing_gives_them() {
        let bodies: [&[u8]; 9] = [
            &bench_identity(),
            br#"{"id":"x\"y","id":"second","userId":"u","n":1.50}"#,
            br#" { "name" : "a\r\nX-Admin: 1" , "o":{"k":[1,2]} } "#,
            br#"{"us\u0065r":"escaped key"}"#,
            br#"{}"#,
            b"not json",
            br#"[1,2]"#,
            b"{\"a\":\"\xff\"}",
            b"",
        ];
        for body in bodies {
            let ok = Answer {
                status: 200,
                body: body.to_vec(),
                ..Answer::default()
            };
            let back = decode(200, &encode(&ok)).unwrap();
            assert_eq!(back.answer.body, body);
            match (Claims::parse(body), back.claims) {
                (Ok(p), Some(Ok(c))) => {
                    assert_eq!(reference::fields(&c, body), reference::fields(&p, body));
                    for name in ["id", "userid", "name", "o", "n", "user"] {
                        assert_eq!(c.get(body, name), p.get(body, name), "{name}");
                    }
                }
                (Err(p), Some(Err(c))) => assert_eq!(p, c),
                // Not indexed (an escaped key): the hit parses it, as before.
                (Ok(p), None) => assert!(!reference::is_fast(&p)),
                _ => panic!("{body:?}"),
            }
        }
    }

    #[test]
    fn an_index_that_does_not_fit_the_body_is_a_miss() {
        let ok = Answer {
            status: 200,
            body: br#"{"id":"alice","n":12}"#.to_vec(),
            ..Answer::default()
        };
        let bytes = encode(&ok);
        // FORMAT, 4 empty fields and pair counts, the index's kind, then its fields.
        let index = 10;
        assert_eq!(bytes[index - 1], 0x12);
        for at in index..index + 10 {
            let mut bad = bytes.clone();
            bad[at] = bad[at].wrapping_add(1);
            assert!(decode(200, &bad).is_none(), "byte {at}");
        }
        let mut bad = bytes.clone();
        bad[index - 1] = 0x11;
        assert!(decode(200, &bad).is_none(), "one field fewer");
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
        let back = decode(200, &encode(&varied)).unwrap().answer;
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
