//! The fleet key: what every gateway of a fleet shares to compute the same digests and
//! authenticate each other's messages.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const MIN_SECRET_LEN: usize = 32;

/// The key of a fleet without `secret=`: published here, so digests are still
/// domain-separated from any other use of the same bytes, but anyone can compute them.
const PUBLIC_SECRET: &[u8] = b"ngx-identity fleet: no secret configured";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FleetKeyError {
    #[error("is shorter than {MIN_SECRET_LEN} bytes (e.g. head -c 32 /dev/urandom > file)")]
    Short,
}

/// Derived once from the secret: a key for digests and, in a keyed fleet, one for tags.
#[derive(Clone)]
pub struct FleetKey {
    digest: Hmac<Sha256>,
    /// The digest key's bytes: the revocation table remembers which key its digests were
    /// made with, so a changed `secret=` does not silently void the revocations in force.
    digest_key: [u8; 32],
    tag: Option<Hmac<Sha256>>,
}

fn derive_bytes(secret: &[u8], label: &[u8]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit of 8160, so expand cannot fail; the
    // zero key it would leave is never reached.
    let _ = Hkdf::<Sha256>::new(Some(b"ngx-identity fleet v1"), secret).expand(label, &mut okm);
    okm
}

fn hmac_of(key: &[u8; 32]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac())
}

fn derive(secret: &[u8], label: &[u8]) -> Hmac<Sha256> {
    hmac_of(&derive_bytes(secret, label))
}

#[cold]
fn unreachable_hmac() -> Hmac<Sha256> {
    // new_from_slice refuses no length for HMAC; this is only a total function's tail.
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default())
}

fn part(mac: &mut Hmac<Sha256>, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_le_bytes());
    mac.update(bytes);
}

impl FleetKey {
    /// A fleet without `secret=`.
    pub fn public() -> Self {
        FleetKey::from_digest_key(derive_bytes(PUBLIC_SECRET, b"digest"))
    }

    /// A key that only makes digests, from `digest_key`'s bytes: what a revocation table
    /// made under an earlier key still needs to recognise its cookies.
    pub fn from_digest_key(digest_key: [u8; 32]) -> Self {
        FleetKey {
            digest: hmac_of(&digest_key),
            digest_key,
            tag: None,
        }
    }

    /// The bytes of the key digests are made with.
    pub fn digest_key(&self) -> [u8; 32] {
        self.digest_key
    }

    /// A fleet with `secret=`: digests are keyed and messages authenticated.
    pub fn from_secret(secret: &[u8]) -> Result<Self, FleetKeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(FleetKeyError::Short);
        }
        let digest_key = derive_bytes(secret, b"digest");
        Ok(FleetKey {
            digest: hmac_of(&digest_key),
            digest_key,
            tag: Some(derive(secret, b"tag")),
        })
    }

    pub fn is_keyed(&self) -> bool {
        self.tag.is_some()
    }

    /// Names a credential (the `identity_key` value and the client headers passed to the
    /// user service, names lowercased) to the whole fleet. Every part is length-prefixed,
    /// so no two different inputs give the same bytes.
    pub fn credential_digest(&self, credential: &[u8], passed: &[(&[u8], &[u8])]) -> [u8; 32] {
        let mut mac = self.digest.clone();
        mac.update(b"C");
        part(&mut mac, credential);
        for (name, value) in passed {
            part(&mut mac, &name.to_ascii_lowercase());
            part(&mut mac, value);
        }
        mac.finalize().into_bytes().into()
    }

    /// Names a sealed cookie (its value as sent) to the whole fleet.
    pub fn sealed_digest(&self, cookie_value: &[u8]) -> [u8; 32] {
        let mut mac = self.digest.clone();
        mac.update(b"S");
        part(&mut mac, cookie_value);
        mac.finalize().into_bytes().into()
    }

    pub(super) fn tag_key(&self) -> Option<&Hmac<Sha256>> {
        self.tag.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_at_least_32_bytes() {
        assert_eq!(
            FleetKey::from_secret(&[1; 31]).err(),
            Some(FleetKeyError::Short)
        );
        assert!(FleetKey::from_secret(&[1; 32]).unwrap().is_keyed());
        assert!(!FleetKey::public().is_keyed());
    }

    #[test]
    fn digests_depend_on_the_key_and_every_part() {
        let public = FleetKey::public();
        let a = FleetKey::from_secret(&[1; 32]).unwrap();
        let b = FleetKey::from_secret(&[2; 32]).unwrap();
        let d = |k: &FleetKey, c: &[u8], p: &[(&[u8], &[u8])]| k.credential_digest(c, p);
        assert_eq!(d(&a, b"s1", &[]), d(&a, b"s1", &[]));
        assert_ne!(d(&a, b"s1", &[]), d(&b, b"s1", &[]));
        assert_ne!(d(&a, b"s1", &[]), d(&public, b"s1", &[]));
        assert_ne!(d(&a, b"s1", &[]), d(&a, b"s2", &[]));
        assert_ne!(d(&a, b"s1", &[]), d(&a, b"s1", &[(b"x-jwt", b"t")]));
        // Header names are one header whatever their case; values are not.
        assert_eq!(
            d(&a, b"s1", &[(b"X-JWT", b"t")]),
            d(&a, b"s1", &[(b"x-jwt", b"t")])
        );
        assert_ne!(
            d(&a, b"s1", &[(b"x-jwt", b"T")]),
            d(&a, b"s1", &[(b"x-jwt", b"t")])
        );
        // Length prefixes: moving bytes between parts changes the digest.
        assert_ne!(d(&a, b"ab", &[(b"c", b"")]), d(&a, b"a", &[(b"bc", b"")]));
        // A sealed cookie's digest never equals a credential's.
        assert_ne!(a.sealed_digest(b"s1"), d(&a, b"s1", &[]));
    }

    #[test]
    fn a_digest_key_rebuilds_the_same_digests() {
        for key in [FleetKey::public(), FleetKey::from_secret(&[5; 32]).unwrap()] {
            let again = FleetKey::from_digest_key(key.digest_key());
            assert!(!again.is_keyed());
            assert_eq!(again.sealed_digest(b"c"), key.sealed_digest(b"c"));
            assert_eq!(
                again.credential_digest(b"c", &[]),
                key.credential_digest(b"c", &[])
            );
        }
        assert_ne!(
            FleetKey::public().digest_key(),
            FleetKey::from_secret(&[5; 32]).unwrap().digest_key()
        );
    }
}
