//! The zone's node bookkeeping while its lock is held: the hash buckets, the LRU queue,
//! allocation with eviction, and expiry. What to evict or expire is `cache_policy`'s.

use core::ffi::c_void;
use core::ptr;

use nginx_sys::{ngx_queue_insert_after, ngx_queue_remove};
use ngx::ffi::{ngx_queue_t, ngx_slab_alloc_locked, ngx_slab_free_locked};

use crate::cache_entry::{decode, Cached, TAG_LEN};
use crate::cache_policy::{self, EntryState, Evict};
use crate::cache_zone::{now_ms, Locked, Node};

impl Locked<'_> {
    /// Whether call `call`'s answer is newer than what `node` (live or null) records and
    /// than the last purge, and the call was numbered by this zone as it is now.
    pub(crate) fn is_newest(&self, node: *mut Node, call: u64) -> bool {
        // SAFETY: the lock is held; zone is the live header, node is live or null.
        let (barrier, seq, recorded) = unsafe {
            (
                (*self.zone).barrier,
                (*self.zone).seq,
                node.as_ref().map(|n| n.seq),
            )
        };
        cache_policy::may_store(call, barrier, seq, recorded)
    }

    fn bucket(&self, tag: &[u8; TAG_LEN]) -> *mut *mut Node {
        let h = usize::from_le_bytes(tag[..8].try_into().unwrap_or([0; 8]));
        // SAFETY: the lock is held; buckets has bucket_mask + 1 slots.
        unsafe { (*self.zone).buckets.add(h & (*self.zone).bucket_mask) }
    }

    pub(crate) fn find(&self, tag: &[u8; TAG_LEN]) -> *mut Node {
        // SAFETY: the lock is held; bucket chains hold live nodes.
        unsafe {
            let mut n = *self.bucket(tag);
            while !n.is_null() {
                if (*n).tag == *tag {
                    return n;
                }
                n = (*n).next;
            }
        }
        ptr::null_mut()
    }

    pub(crate) fn lru_head(&self) -> *mut ngx_queue_t {
        // SAFETY: the lock is held; a place expression, no reference is made.
        unsafe { ptr::addr_of_mut!((*self.zone).lru) }
    }

    pub(crate) fn tail(&self) -> *mut Node {
        let head = self.lru_head();
        // SAFETY: the lock is held; lru links nodes through their `lru` field.
        unsafe {
            let last = (*head).prev;
            if last == head {
                return ptr::null_mut();
            }
            (last as *mut u8).sub(core::mem::offset_of!(Node, lru)) as *mut Node
        }
    }

    /// Moves `node` (live) to the LRU head.
    pub(crate) fn touch(&mut self, node: *mut Node, now: u32) {
        self.mark_dirty();
        let head = self.lru_head();
        // SAFETY: the lock is held; node is live and linked in lru.
        unsafe {
            ngx_queue_remove(ptr::addr_of_mut!((*node).lru));
            ngx_queue_insert_after(head, ptr::addr_of_mut!((*node).lru));
            (*node).queued_at = now;
            (*node).last_used = now;
        }
    }

    pub(crate) fn create_node(&mut self, tag: &[u8; TAG_LEN], now: u32) -> *mut Node {
        let node = self.alloc(size_of::<Node>(), now) as *mut Node;
        if node.is_null() {
            return node;
        }
        let bucket = self.bucket(tag);
        let head = self.lru_head();
        // SAFETY: the lock is held; bucket is a slot of the bucket array.
        let next = unsafe { *bucket };
        let fresh = Node {
            next,
            lru: ngx_queue_t {
                prev: ptr::null_mut(),
                next: ptr::null_mut(),
            },
            tag: *tag,
            status: 0,
            in_flight: 0,
            has_data: 0,
            blob_len: 0,
            queued_at: now,
            expires_ms: 0,
            stale_until_ms: 0,
            last_used: now,
            lock_until_ms: 0,
            failed_at_ms: 0,
            seq: 0,
            blob: ptr::null_mut(),
        };
        // SAFETY: the lock is held (and the zone marked dirty by alloc); node is a fresh
        // slab allocation of a Node's size, linked at the head of its bucket and queue.
        unsafe {
            ptr::write(node, fresh);
            *bucket = node;
            ngx_queue_insert_after(head, ptr::addr_of_mut!((*node).lru));
            (*self.zone).entries += 1;
        }
        node
    }

    /// Allocates from the zone, evicting least recently used entries while it is full.
    pub(crate) fn alloc(&mut self, size: usize, now: u32) -> *mut c_void {
        self.mark_dirty();
        for _ in 0..64 {
            // SAFETY: the lock is held, so the pool is ours to use.
            let p = unsafe { ngx_slab_alloc_locked(self.shpool, size) };
            if !p.is_null() {
                return p;
            }
            self.warn_full(now);
            if !self.evict_one(now) {
                break;
            }
        }
        ptr::null_mut()
    }

    pub(crate) fn warn_full(&mut self, now: u32) {
        // SAFETY: the lock is held; zone is the live header.
        let last = unsafe { &mut (*self.zone).last_full_warning };
        if u64::from(now) >= *last + 60 {
            *last = u64::from(now);
            self.cz.warn_full();
        }
    }

    /// Frees up to two entries past their stale deadline from the LRU tail.
    pub(crate) fn expire_some(&mut self) {
        for _ in 0..2 {
            let tail = self.tail();
            // SAFETY: the lock is held; tail is a live node or null.
            match unsafe { tail.as_ref() } {
                Some(n) if n.state().expired(now_ms()) => self.remove_node(tail),
                _ => return,
            }
        }
    }

    /// Evicts one entry, giving recently used ones a second chance. False when nothing
    /// could be evicted.
    pub(crate) fn evict_one(&mut self, now: u32) -> bool {
        let now_ms = now_ms();
        for round in 0..cache_policy::EVICT_ROUNDS {
            let tail = self.tail();
            // SAFETY: the lock is held; tail is a live node or null.
            let Some(n) = (unsafe { tail.as_ref() }) else {
                return false;
            };
            let used_since_queued = n.last_used > n.queued_at;
            match cache_policy::evict(&n.state(), used_since_queued, now_ms, round) {
                Evict::SecondChance => self.touch(tail, now),
                Evict::Remove => {
                    crate::metrics::count_eviction(&self.cz.name);
                    self.remove_node(tail);
                    return true;
                }
            }
        }
        false
    }

    /// Frees the answer of `node` (a live node of this zone), if it has one.
    pub(crate) fn free_blob(&mut self, node: *mut Node) {
        self.mark_dirty();
        // SAFETY: the lock is held; node is live; its blob is freed and forgotten.
        unsafe {
            if !(*node).blob.is_null() {
                ngx_slab_free_locked(self.shpool, (*node).blob as *mut c_void);
                (*node).blob = ptr::null_mut();
                (*node).has_data = 0;
            }
        }
    }

    /// Unlinks and frees `node`, a live node of this zone.
    pub(crate) fn remove_node(&mut self, node: *mut Node) {
        self.mark_dirty();
        // SAFETY: the lock is held; node is live.
        let mut link = self.bucket(unsafe { &(*node).tag });
        // SAFETY: the lock is held; the bucket's chain links live nodes.
        unsafe {
            while !(*link).is_null() && *link != node {
                link = ptr::addr_of_mut!((**link).next);
            }
            if *link == node {
                *link = (*node).next;
            }
        }
        // SAFETY: the lock is held; node is live and in lru; unlinked from its bucket
        // above, it is freed with its blob and never reached again.
        unsafe {
            ngx_queue_remove(ptr::addr_of_mut!((*node).lru));
            if !(*node).blob.is_null() {
                ngx_slab_free_locked(self.shpool, (*node).blob as *mut c_void);
            }
            ngx_slab_free_locked(self.shpool, node as *mut c_void);
            (*self.zone).entries -= 1;
        }
    }
}

impl Node {
    /// What the decisions in `cache_policy` need to know of this entry.
    pub(crate) fn state(&self) -> EntryState {
        EntryState {
            has_data: self.has_data != 0,
            expires_ms: self.expires_ms,
            stale_until_ms: self.stale_until_ms,
            in_flight: self.in_flight != 0,
            lock_until_ms: self.lock_until_ms,
            failed_at_ms: self.failed_at_ms,
        }
    }

    /// The kept answer, with its claims as the entry recorded them.
    pub(crate) fn answer(&self) -> Option<Cached> {
        if self.blob.is_null() {
            return None;
        }
        // SAFETY: blob holds blob_len bytes written by `store`, freed only under the
        // zone's lock, which the caller holds.
        let bytes = unsafe { core::slice::from_raw_parts(self.blob, self.blob_len as usize) };
        decode(self.status, bytes)
    }
}
