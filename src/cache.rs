//! The identity cache's operations on a zone: lookup (with single flight), store,
//! failure, settling a definitive answer, purge. Each reads the key's entry under the
//! zone's lock, asks `cache_policy` what to do, and does it. The zone's structure is in
//! cache_zone.rs (see there for how a dying worker is survived).

use core::ptr;

use crate::cache_entry::{encode, Cached, TAG_LEN};
use crate::cache_policy;
use crate::decision::Answer;

pub use crate::cache_policy::LockPolicy;
pub use crate::cache_zone::{init_zone, CacheZone};
use crate::cache_zone::{now_ms, now_secs};

/// What a lookup found: answers with their claims as the entry recorded them.
pub type Lookup = cache_policy::Lookup<Cached>;

impl CacheZone {
    /// Finds `tag`. `waiting_since_ms` is set for a request that waited on another's call.
    pub fn lookup(
        &self,
        tag: &[u8; TAG_LEN],
        lock: LockPolicy,
        waiting_since_ms: Option<u64>,
    ) -> Lookup {
        let Some(mut z) = self.lock() else {
            return Lookup::Fetch { locked: false };
        };
        let (now, now_ms) = (now_secs(), now_ms());
        let mut node = z.find(tag);
        // SAFETY: the lock is held; find returns a live node or null.
        let found = match unsafe { node.as_mut() } {
            Some(n) => {
                let entry = n.state();
                if entry.fresh(now_ms) {
                    n.last_used = now;
                }
                cache_policy::lookup(Some(&entry), now_ms, lock, waiting_since_ms, || n.answer())
            }
            None => cache_policy::lookup(None, now_ms, lock, waiting_since_ms, || None),
        };
        if !matches!(found, Lookup::Fetch { locked: true }) {
            return found;
        }
        if node.is_null() {
            node = z.create_node(tag, now);
        }
        // SAFETY: the lock is held; node is live or null.
        match unsafe { node.as_mut() } {
            Some(n) => {
                n.in_flight = 1;
                n.lock_until_ms = cache_policy::lock_deadline(now_ms, lock);
                Lookup::Fetch { locked: true }
            }
            None => Lookup::Fetch { locked: false },
        }
    }

    /// Keeps `answer` for `ttl` seconds (plus `use_stale` while failing) and releases the
    /// key's lock; `ttl` of `None` only releases it.
    /// `call` is the number `begin_call` gave the call that got `answer`: an answer older
    /// than the last purge, or than the answer the key records, is not kept.
    pub fn store(
        &self,
        tag: &[u8; TAG_LEN],
        answer: &Answer,
        ttl: Option<u32>,
        use_stale: u32,
        call: u64,
    ) {
        let Some(mut z) = self.lock() else { return };
        let now = now_secs();
        z.expire_some();
        let mut node = z.find(tag);
        let ttl = ttl
            .filter(|_| z.is_newest(node, call))
            .map(|ttl| z.offline_cap(ttl));
        let Some(ttl) = ttl else {
            // SAFETY: the lock is held; node is live or null.
            if let Some(n) = unsafe { node.as_mut() } {
                n.in_flight = 0;
                if cache_policy::empty_after_release(n.has_data != 0, n.seq) {
                    z.remove_node(node);
                }
            }
            return;
        };
        if node.is_null() {
            node = z.create_node(tag, now);
            if node.is_null() {
                return;
            }
        }
        z.mark_dirty();
        z.free_blob(node);
        {
            // SAFETY: the lock is held; node is live. The reference ends before alloc,
            // which may touch other nodes.
            let n = unsafe { &mut *node };
            n.failed_at_ms = 0;
            // Marked busy while allocating, so making room never evicts this node.
            n.in_flight = 1;
            n.lock_until_ms = u64::MAX;
        }
        let bytes = encode(answer);
        let blob = z.alloc(bytes.len(), now) as *mut u8;
        // SAFETY: the lock is held; node is still live (busy nodes are not evicted).
        let n = unsafe { &mut *node };
        n.in_flight = 0;
        n.lock_until_ms = 0;
        if blob.is_null() {
            z.remove_node(node);
            return;
        }
        // SAFETY: blob is a fresh allocation of bytes.len() bytes.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), blob, bytes.len()) };
        n.blob = blob;
        n.blob_len = bytes.len() as u32;
        n.status = answer.status;
        n.has_data = 1;
        n.seq = call;
        let now_ms = now_ms();
        (n.expires_ms, n.stale_until_ms) = cache_policy::deadlines(now_ms, ttl, use_stale);
        z.touch(node, now);
    }

    /// Records that the call for `tag` failed, releasing its lock so waiters stop waiting
    /// (onto the stale or error path, not into calls of their own). Returns the stale
    /// answer if one may still be served.
    pub fn fail(&self, tag: &[u8; TAG_LEN]) -> Option<Cached> {
        let z = self.lock()?;
        let now_ms = now_ms();
        // SAFETY: the lock is held; find returns a live node or null.
        let n = unsafe { z.find(tag).as_mut() }?;
        n.in_flight = 0;
        n.failed_at_ms = now_ms.max(1);
        n.state().stale_usable(now_ms).then(|| n.answer()).flatten()
    }

    /// Releases the key's lock without a result (the request went away).
    pub fn release(&self, tag: &[u8; TAG_LEN]) {
        self.store(tag, &Answer::default(), None, 0, 0);
    }

    /// Numbers a call to the user service, before it begins; given back to `store` or
    /// `settle` with its answer.
    pub fn begin_call(&self) -> Option<u64> {
        let z = self.lock()?;
        // SAFETY: the lock is held; zone is the live header.
        unsafe {
            (*z.zone).seq += 1;
            Some((*z.zone).seq)
        }
    }

    /// A definitive answer of call `call` that may not be kept (a refusal with no
    /// `identity_cache_valid` rule, `no-store`): the key's older answer goes and is never
    /// served stale, and the key records the call's number, so an older call's answer
    /// arriving later is not stored either (a revoked session is not brought back).
    pub fn settle(&self, tag: &[u8; TAG_LEN], call: u64) {
        let Some(mut z) = self.lock() else { return };
        let mut node = z.find(tag);
        // SAFETY: the lock is held; node is live or null.
        if cache_policy::settle_keeps_newer(unsafe { node.as_ref() }.map(|n| n.seq), call) {
            // A newer answer is recorded: it stays.
            return;
        }
        if node.is_null() {
            node = z.create_node(tag, now_secs());
        }
        if node.is_null() {
            return;
        }
        z.mark_dirty();
        z.free_blob(node);
        // SAFETY: the lock is held; node is live.
        let n = unsafe { &mut *node };
        // Waiters find no lock, no failure and no data: each calls for itself.
        n.has_data = 0;
        n.in_flight = 0;
        n.lock_until_ms = 0;
        n.failed_at_ms = 0;
        n.seq = call;
    }

    /// Removes the entry for `tag` on a logout (`identity_cache_purge`), and, under the
    /// same lock, makes every call in flight unable to store its answer; whether there
    /// was an entry.
    pub fn purge(&self, tag: &[u8; TAG_LEN]) -> bool {
        crate::metrics::count_purge(&self.name, self.remove_entry(tag, true))
    }

    /// Removes the entry for `tag`; whether there was one.
    pub fn remove(&self, tag: &[u8; TAG_LEN]) -> bool {
        self.remove_entry(tag, false)
    }

    fn remove_entry(&self, tag: &[u8; TAG_LEN], purge: bool) -> bool {
        let Some(mut z) = self.lock() else {
            return false;
        };
        if purge {
            // SAFETY: the lock is held; zone is the live header.
            unsafe {
                (*z.zone).seq += 1;
                (*z.zone).barrier = (*z.zone).seq;
            }
        }
        let node = z.find(tag);
        if node.is_null() {
            return false;
        }
        // SAFETY: the lock is held; node is live.
        let had_data = unsafe { (*node).has_data != 0 };
        z.remove_node(node);
        had_data
    }
}
