//! Cache keys: the keyed hash that stands for a user-service question and a credential.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::TAG_LEN;

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
        self.tag_of_parts(&[credential])
    }

    /// The tag of the parts' concatenation, which is never built (no allocation).
    pub fn tag_of_parts(&self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// `self.tag(&key_input(question, credential))`, without building the input: the
    /// cache key of every request.
    pub fn key_tag(&self, question: &[u8], credential: &[u8]) -> [u8; TAG_LEN] {
        self.with_question(question).tag(credential)
    }

    /// A hasher whose `tag(credential)` is `self.key_tag(question, credential)`: the
    /// question's part of `key_input` absorbed once, for a location to keep.
    pub fn with_question(&self, question: &[u8]) -> KeyHasher {
        let mut mac = self.0.clone();
        mac.update(b"K");
        mac.update(&(question.len() as u64).to_le_bytes());
        mac.update(question);
        KeyHasher(mac)
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

/// `key_input` for a location that hands the user service client headers of its own
/// (`identity_pass_client_header`): the user service judged those headers too, so the
/// entry is keyed on them as well, each name (lowercased: one header whatever its case)
/// and value in the order the client sent them. With none passed it is `key_input`
/// itself, so a request that carries none shares its entry (and `identity_cache_purge`)
/// with a location that passes nothing. Otherwise the leading byte differs from
/// `key_input`'s and every part is length-prefixed, so no such input equals another.
pub fn key_input_with_headers(
    question: &[u8],
    credential: &[u8],
    passed: &[(&[u8], &[u8])],
) -> Vec<u8> {
    if passed.is_empty() {
        return key_input(question, credential);
    }
    let mut out = vec![b'H'];
    let mut part = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    part(question);
    part(credential);
    for (name, value) in passed {
        part(&name.to_ascii_lowercase());
        part(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn key_tag_is_the_tag_of_key_input() {
        let h = KeyHasher::new(&[9; 32]).unwrap();
        for (q, c) in [(&b""[..], &b""[..]), (b"/a", b"b/c"), (b"/ab", b"/c")] {
            assert_eq!(h.key_tag(q, c), h.tag(&key_input(q, c)));
            assert_eq!(h.with_question(q).tag(c), h.tag(&key_input(q, c)));
        }
        assert_ne!(h.key_tag(b"/a", b"b/c"), h.key_tag(b"/ab", b"/c"));
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
    fn passed_headers_are_part_of_the_key() {
        let q = question(b"gw", b"/_identity");
        // None passed: the plain key, so entries and purges stay as they were.
        assert_eq!(key_input_with_headers(&q, b"c", &[]), key_input(&q, b"c"));
        let with =
            |cred: &[u8], passed: &[(&[u8], &[u8])]| key_input_with_headers(&q, cred, passed);
        let jwt: &[u8] = b"X-Example-Authorization";
        // The value counts, and a header alone is a credential of its own.
        assert_ne!(with(b"c", &[(jwt, b"t1")]), with(b"c", &[(jwt, b"t2")]));
        assert_ne!(with(b"c", &[(jwt, b"t1")]), key_input(&q, b"c"));
        assert_ne!(with(b"", &[(jwt, b"t1")]), key_input(&q, b"t1"));
        // The name's case does not; its spelling does.
        assert_eq!(
            with(b"", &[(jwt, b"t1")]),
            with(b"", &[(b"x-example-authorization", b"t1")])
        );
        assert_ne!(
            with(b"", &[(jwt, b"t1")]),
            with(b"", &[(b"X-Other", b"t1")])
        );
        // Every split of the same bytes is a different input, and order counts.
        assert_ne!(with(b"ab", &[(b"n", b"v")]), with(b"a", &[(b"bn", b"v")]));
        assert_ne!(
            with(b"", &[(b"n", b"vx")]),
            with(b"", &[(b"n", b"v"), (b"x", b"")])
        );
        assert_ne!(
            with(b"", &[(b"n", b"1"), (b"n", b"2")]),
            with(b"", &[(b"n", b"2"), (b"n", b"1")])
        );
        // Never the bytes of a plain key_input, whatever the credential.
        let input = with(b"c", &[(jwt, b"t1")]);
        assert_eq!(input[0], b'H');
        assert_eq!(key_input(&q, &input)[0], b'K');
    }
}
