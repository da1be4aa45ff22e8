//! A synced zone's side of its Redis link (`identity_cache_sync`): the link's lease in
//! the zone's header, and what a (re)connected link does to the entries.

use core::cell::OnceCell;

use crate::cache_entry::{key_input_with_headers, KeyHasher, TAG_LEN};
use crate::cache_zone::{now_ms, CacheZone, Locked, Node};

/// How long one renewal of the lease lasts: the subscriber renews it every second, so
/// three missed renewals (a dead subscriber, a stalled link) read as offline.
const LEASE_MS: u64 = 3000;

impl Locked<'_> {
    /// `ttl` as a synced zone keeps a new entry: at most `offline=` while the link is not
    /// known to be up, since a purge published meanwhile may never arrive.
    pub(crate) fn offline_cap(&self, ttl: u32) -> u32 {
        let Some(fleet) = self.cz.fleet.get() else {
            return ttl;
        };
        // SAFETY: the lock is held; zone is the live header.
        let online_until = unsafe { (*self.zone).online_until_ms };
        if now_ms() < online_until {
            ttl
        } else {
            ttl.min(fleet.offline_ttl)
        }
    }
}

impl CacheZone {
    /// The link is up: renews its lease.
    pub fn renew_lease(&self) {
        if let Some(z) = self.lock() {
            // SAFETY: the lock is held; zone is the live header (a scalar store).
            unsafe { (*z.zone).online_until_ms = now_ms() + LEASE_MS };
        }
    }

    /// The link is lost: new entries are capped from now on.
    pub fn end_lease(&self) {
        if let Some(z) = self.lock() {
            // SAFETY: the lock is held; zone is the live header.
            unsafe { (*z.zone).online_until_ms = 0 };
        }
    }

    /// The link is (back) up: purges published while it was down were missed, so every
    /// entry stored so far expires (it is asked again on next use, never served stale),
    /// and no call begun before now may store its answer.
    pub fn expire_all(&self) {
        let Some(z) = self.lock() else { return };
        let head = z.lru_head();
        // SAFETY: the lock is held; lru links live nodes through their `lru` field. Only
        // scalar fields are written, so the zone's structure does not change.
        unsafe {
            (*z.zone).seq += 1;
            (*z.zone).barrier = (*z.zone).seq;
            let mut q = (*head).next;
            while q != head {
                let node = (q as *mut u8).sub(core::mem::offset_of!(Node, lru)) as *mut Node;
                (*node).expires_ms = 0;
                (*node).stale_until_ms = 0;
                q = (*q).next;
            }
        }
    }
}

impl CacheZone {
    /// The cache key of `credential` (and the client headers passed with it) for
    /// `question`. In a synced zone the credential is first replaced by its fleet digest,
    /// which is what the fleet's purge messages name: every gateway recomputes its own
    /// keys from it with its own secret.
    /// `question_hasher` is the asking location's cell for `question` absorbed
    /// (`KeyHasher::with_question`), filled on first use.
    pub fn entry_tag(
        &self,
        question: &[u8],
        question_hasher: &OnceCell<KeyHasher>,
        credential: &[u8],
        passed: &[(&[u8], &[u8])],
    ) -> Option<[u8; TAG_LEN]> {
        let asked = || -> Option<&KeyHasher> {
            if let Some(h) = question_hasher.get() {
                return Some(h);
            }
            let h = self.hasher()?.with_question(question);
            Some(question_hasher.get_or_init(|| h))
        };
        match self.fleet.get() {
            Some(fleet) => {
                let digest = fleet.key.credential_digest(credential, passed);
                Some(asked()?.tag(&digest))
            }
            // The usual case, on every request: no input built, the question hashed once.
            None if passed.is_empty() => Some(asked()?.tag(credential)),
            None => self.tag(&key_input_with_headers(question, credential, passed)),
        }
    }

    /// Removes the entries a fleet digest stands for, one per question asked through the
    /// zone (a logout ends them all), barring calls in flight from storing; whether one
    /// was held.
    pub fn purge_digest(&self, digest: &[u8; 32]) -> bool {
        let mut removed = false;
        for question in self.questions() {
            if let Some(tag) = self.hasher().map(|h| h.key_tag(&question, digest)) {
                removed |= self.purge(&tag);
            }
        }
        removed
    }
}
