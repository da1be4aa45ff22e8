//! A small, bounded cache of signed assertions, one per nginx worker: an ES256 signature
//! costs tens of microseconds, more than a whole cached request, so an assertion is made
//! once per identity, `AssertionSpec`, signing key and expiry cap, and sent again while
//! `Assertion::reusable_with` allows (until less than half its life is left).
//!
//! Entries are found by the SHA-256 of everything that shapes the token, so two inputs
//! never share an entry unless SHA-256 collides. The cache is 4-way set associative with
//! least-recently-used eviction inside a set: a fixed number of entries, no growth.

use core::num::NonZeroU32;

use sha2::{Digest, Sha256};

use crate::assertion::{sign, Assertion, AssertionError, AssertionSpec};
use crate::assertion_key::AssertionKey;

/// Entries in a set.
pub const WAYS: usize = 4;
/// Entries per worker by default: a token is a few hundred bytes, so a few hundred KB.
pub const DEFAULT_ENTRIES: usize = 1024;

struct Slot {
    digest: [u8; 32],
    assertion: Assertion,
    /// The cache's clock when the entry was last used.
    used: u64,
}

pub struct AssertionCache {
    sets: Vec<[Option<Slot>; WAYS]>,
    clock: u64,
}

impl AssertionCache {
    /// A cache of at least `entries` entries (rounded up to whole sets, one at least).
    pub fn new(entries: usize) -> Self {
        let sets = entries.div_ceil(WAYS).max(1);
        AssertionCache {
            sets: (0..sets).map(|_| Default::default()).collect(),
            clock: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.sets.len() * WAYS
    }

    /// The assertion for `identity` under `spec`, signed by `key` at `now`, its `exp` no
    /// later than `cap` (seconds since 1970) when given: a reusable cached one, else a
    /// new one, cached.
    pub fn assertion(
        &mut self,
        key: &AssertionKey,
        spec: &AssertionSpec,
        identity: &[u8],
        cap: Option<i64>,
        now: i64,
    ) -> Result<&Assertion, AssertionError> {
        let digest = digest(key, spec, identity, cap);
        self.clock += 1;
        let clock = self.clock;
        let set_index = set_of(&digest, self.sets.len());
        let set = &mut self.sets[set_index];
        let way = match set
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.digest == digest))
        {
            Some(way)
                if set[way]
                    .as_ref()
                    .is_some_and(|s| s.assertion.reusable_with(key, now)) =>
            {
                way
            }
            found => {
                let assertion = sign_capped(key, spec, identity, cap, now)?;
                // The entry's own way, else an empty one, else the least recently used.
                let way = found
                    .or_else(|| set.iter().position(Option::is_none))
                    .unwrap_or_else(|| {
                        (0..WAYS)
                            .min_by_key(|&w| set[w].as_ref().map_or(0, |s| s.used))
                            .unwrap_or(0)
                    });
                set[way] = Some(Slot {
                    digest,
                    assertion,
                    used: clock,
                });
                way
            }
        };
        match &mut set[way] {
            Some(slot) => {
                slot.used = clock;
                Ok(&slot.assertion)
            }
            // The slot was filled just above or found filled.
            None => Err(AssertionError::Sign),
        }
    }
}

/// Signs with the spec's ttl, shortened so that `exp` is at most `cap`.
pub fn sign_capped(
    key: &AssertionKey,
    spec: &AssertionSpec,
    identity: &[u8],
    cap: Option<i64>,
    now: i64,
) -> Result<Assertion, AssertionError> {
    let left = cap.map(|cap| cap.saturating_sub(now));
    match left {
        Some(left) if left < i64::from(spec.ttl.get()) => {
            let ttl = u32::try_from(left)
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or(AssertionError::Expired)?;
            let capped = AssertionSpec {
                ttl,
                ..spec.clone()
            };
            sign(key, &capped, identity, now)
        }
        _ => sign(key, spec, identity, now),
    }
}

/// SHA-256 of every input of an assertion but the time, each part length-prefixed.
fn digest(key: &AssertionKey, spec: &AssertionSpec, identity: &[u8], cap: Option<i64>) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(key.kid().as_bytes());
    part(spec.issuer.as_bytes());
    match &spec.audience {
        Some(aud) => part(&[&[1], aud.as_bytes()].concat()),
        None => part(&[0]),
    }
    part(&spec.ttl.get().to_le_bytes());
    match &spec.claims {
        Some(names) => {
            part(&(names.len() as u64 + 1).to_le_bytes());
            names.iter().for_each(|n| part(n.as_bytes()));
        }
        None => part(&0u64.to_le_bytes()),
    }
    match cap {
        Some(cap) => part(&[&[1][..], &cap.to_le_bytes()].concat()),
        None => part(&[0]),
    }
    part(identity);
    h.finalize().into()
}

fn set_of(digest: &[u8; 32], sets: usize) -> usize {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(first) % sets as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assertion_key::tests::{key, KID, PKCS8, PKCS8_B};

    fn spec() -> AssertionSpec {
        AssertionSpec::default()
    }

    #[test]
    fn reused_until_half_the_life_is_left_then_signed_anew() {
        let k = key(PKCS8);
        let mut cache = AssertionCache::new(8);
        let first = cache
            .assertion(&k, &spec(), b"{\"id\":1}", None, 1000)
            .unwrap()
            .clone();
        assert_eq!(
            (first.iat, first.exp, first.kid.as_str()),
            (1000, 1060, KID)
        );
        // ring's signatures are randomised: the same token means the cached one.
        let again = cache
            .assertion(&k, &spec(), b"{\"id\":1}", None, 1030)
            .unwrap();
        assert_eq!(again.token, first.token);
        let renewed = cache
            .assertion(&k, &spec(), b"{\"id\":1}", None, 1031)
            .unwrap();
        assert_ne!(renewed.token, first.token);
        assert_eq!((renewed.iat, renewed.exp), (1031, 1091));
    }

    #[test]
    fn every_input_has_its_own_entry() {
        let (a, b) = (key(PKCS8), key(PKCS8_B));
        let mut cache = AssertionCache::new(64);
        let mut token = |k: &AssertionKey, s: &AssertionSpec, id: &[u8], cap| {
            cache.assertion(k, s, id, cap, 1000).unwrap().token.clone()
        };
        let base = token(&a, &spec(), b"{\"id\":1}", None);
        assert_eq!(token(&a, &spec(), b"{\"id\":1}", None), base);
        let aud = AssertionSpec {
            audience: Some("x".into()),
            ..spec()
        };
        let claims = AssertionSpec {
            claims: Some(vec![]),
            ..spec()
        };
        let ttl = AssertionSpec {
            ttl: NonZeroU32::new(61).unwrap(),
            ..spec()
        };
        let issuer = AssertionSpec {
            issuer: "other".into(),
            ..spec()
        };
        let others = [
            token(&a, &spec(), b"{\"id\":2}", None),
            token(&b, &spec(), b"{\"id\":1}", None),
            token(&a, &aud, b"{\"id\":1}", None),
            token(&a, &claims, b"{\"id\":1}", None),
            token(&a, &ttl, b"{\"id\":1}", None),
            token(&a, &issuer, b"{\"id\":1}", None),
            token(&a, &spec(), b"{\"id\":1}", Some(2000)),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(other, &base, "{i}");
        }
        // Each of them was cached under its own entry, the first one is still there.
        assert_eq!(token(&a, &spec(), b"{\"id\":1}", None), base);
        assert_eq!(token(&a, &aud, b"{\"id\":1}", None), others[2]);
    }

    #[test]
    fn a_rotated_key_signs_anew() {
        let (a, b) = (key(PKCS8), key(PKCS8_B));
        let mut cache = AssertionCache::new(8);
        let old = cache
            .assertion(&a, &spec(), b"{}", None, 1000)
            .unwrap()
            .clone();
        let new = cache.assertion(&b, &spec(), b"{}", None, 1001).unwrap();
        assert_ne!(new.kid, old.kid);
    }

    #[test]
    fn bounded_with_least_recently_used_eviction() {
        let k = key(PKCS8);
        let mut cache = AssertionCache::new(1);
        assert_eq!(cache.capacity(), WAYS);
        assert_eq!(AssertionCache::new(10).capacity(), 12);
        let ids: Vec<Vec<u8>> = (0..=WAYS)
            .map(|i| format!("{{\"id\":{i}}}").into_bytes())
            .collect();
        let tok = |cache: &mut AssertionCache, i: usize| {
            cache
                .assertion(&k, &spec(), &ids[i], None, 1000)
                .unwrap()
                .token
                .clone()
        };
        let first: Vec<String> = (0..WAYS).map(|i| tok(&mut cache, i)).collect();
        // Entry 0 used again, so entry 1 is the least recently used one.
        assert_eq!(tok(&mut cache, 0), first[0]);
        tok(&mut cache, WAYS);
        assert_eq!(tok(&mut cache, 0), first[0]);
        assert_eq!(tok(&mut cache, 2), first[2]);
        assert_ne!(tok(&mut cache, 1), first[1], "evicted");
    }

    #[test]
    fn exp_is_capped() {
        let k = key(PKCS8);
        let mut cache = AssertionCache::new(8);
        let a = cache
            .assertion(&k, &spec(), b"{}", Some(1010), 1000)
            .unwrap();
        assert_eq!((a.iat, a.exp), (1000, 1010));
        let a = cache
            .assertion(&k, &spec(), b"{}", Some(5000), 1000)
            .unwrap();
        assert_eq!((a.iat, a.exp), (1000, 1060));
        assert_eq!(
            cache.assertion(&k, &spec(), b"{}", Some(1000), 1000),
            Err(AssertionError::Expired)
        );
        assert_eq!(
            sign_capped(&k, &spec(), b"{}", Some(i64::MIN), i64::MAX),
            Err(AssertionError::Expired)
        );
        // A failure is not cached.
        assert_eq!(
            cache.assertion(&k, &spec(), b"[]", None, 1000),
            Err(AssertionError::NotAnObject)
        );
    }
}
