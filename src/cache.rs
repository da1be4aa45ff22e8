//! The shared-memory identity cache: one zone per `identity_cache_zone`, shared by all
//! workers, surviving reloads that keep its name and size.
//!
//! Layout in the zone's slab pool: a `Zone` header (dirty mark, secret, hash buckets, LRU
//! queue) and, per credential, a 128-byte-class `Node` plus its encoded answer. Keys are
//! HMAC-SHA256 tags of the credential under the zone's own secret. LRU order is kept by
//! the writers: eviction walks the queue from the tail and gives a node that was used
//! since it was queued a second chance.
//!
//! # A worker may die at any instant
//!
//! The zone's only lock is the slab pool's own mutex (`shpool->mutex`, the one
//! `ngx_slab_alloc` takes). It records the holder's pid, and nginx's master force-releases
//! it for every shared zone when it reaps a worker (`ngx_unlock_mutexes`), so a worker
//! killed while holding it never blocks the others.
//!
//! What the dead worker was changing may be torn, though: a half-linked node, a slab page
//! half-freed. Every structural change therefore runs between `Zone::dirty = 1` and
//! `Zone::dirty = 0`, both under the lock. The next holder that finds the mark set knows
//! its predecessor died mid-change and does not trust anything in the pool: it
//! reinitialises the slab pool and the header (keeping the secret) and starts empty.
//! Entries are only a cache, so losing them costs user-service calls, never a wrong
//! answer. The scalar fields a lookup sets on a node without the mark (`in_flight`,
//! `lock_until_ms`, `failed_at_ms`, `last_used`) are single aligned stores whose every
//! combination is one a live worker can leave too; a single-flight mark of a dead worker
//! ends at its `lock_until_ms` like any other.

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{compiler_fence, Ordering};
use std::cell::{OnceCell, RefCell};
use std::io::Read;

use nginx_sys::{ngx_queue_init, ngx_queue_insert_after, ngx_queue_remove};
use ngx::ffi::{
    ngx_current_msec, ngx_queue_t, ngx_shm_zone_t, ngx_shmtx_lock, ngx_shmtx_unlock,
    ngx_slab_alloc_locked, ngx_slab_calloc_locked, ngx_slab_free_locked, ngx_slab_init,
    ngx_slab_pool_t, ngx_time, NGX_LOG_WARN,
};
use ngx::ngx_log_error;

use crate::cache_entry::{decode, encode, KeyHasher, TAG_LEN};
use crate::decision::Answer;

/// Configuration-side handle of one zone (`shm_zone->data`); each worker keeps its own
/// copy of the keyed hash state.
pub struct CacheZone {
    pub name: String,
    pub shm: *mut ngx_shm_zone_t,
    hasher: OnceCell<KeyHasher>,
    /// The zone's key secret, read or drawn by the master in `init_zone` before workers
    /// fork, so every worker of a cycle keys with the same bytes whatever happens to the
    /// header in shared memory (a rebuild cut short by a dying worker included).
    secret: OnceCell<[u8; 32]>,
    /// The questions (`cache_entry::question`: a server's `identity_request` URI) asked
    /// through this zone, registered at configuration time, so a purge can remove a
    /// credential's entry for each of them.
    questions: RefCell<Vec<Vec<u8>>>,
}

/// "IDZ2": a header this code wrote (with call numbers; an "IDZ1" header is rebuilt).
const MAGIC: u32 = 0x325a_4449;

#[repr(C)]
struct Zone {
    /// Set while a worker changes the zone's structure; see the module comment.
    dirty: u32,
    magic: u32,
    secret: [u8; 32],
    buckets: *mut *mut Node,
    bucket_mask: usize,
    lru: ngx_queue_t,
    entries: usize,
    last_full_warning: u64,
    /// The number of the last call begun (`CacheZone::begin_call`); a purge takes one too.
    seq: u64,
    /// Calls numbered up to this may not store: they began before the last purge (a
    /// logout) or before the zone was rebuilt.
    barrier: u64,
}

#[repr(C)]
struct Node {
    next: *mut Node,
    lru: ngx_queue_t,
    tag: [u8; TAG_LEN],
    status: u16,
    in_flight: u8,
    has_data: u8,
    blob_len: u32,
    queued_at: u32,
    /// Deadlines on nginx's monotonic millisecond clock, shared by all workers.
    expires_ms: u64,
    stale_until_ms: u64,
    last_used: u32,
    lock_until_ms: u64,
    failed_at_ms: u64,
    /// The number of the call whose answer this node records: an older call's answer,
    /// arriving later, never replaces it. A node without data but with a number is the
    /// record of a definitive answer that was not kept (`CacheZone::settle`).
    seq: u64,
    blob: *mut u8,
}

/// What a lookup found.
pub enum Lookup {
    /// A fresh answer.
    Fresh(Answer),
    /// Another request is asking the user service for this key: wait and look again.
    Wait,
    /// The call this request waited for failed; the stale answer, if still allowed.
    PeerFailed(Option<Answer>),
    /// Ask the user service; `locked` when this request now holds the key's lock.
    Fetch { locked: bool },
}

/// How a lookup should treat the key's lock.
#[derive(Clone, Copy)]
pub struct LockPolicy {
    pub enabled: bool,
    pub timeout_ms: u64,
}

fn now_secs() -> u32 {
    u32::try_from(ngx_time()).unwrap_or(u32::MAX)
}

fn now_ms() -> u64 {
    // SAFETY: nginx updates ngx_current_msec on its own thread; a plain read.
    unsafe { ngx_current_msec as u64 }
}

impl CacheZone {
    pub fn new(name: String, shm: *mut ngx_shm_zone_t) -> Self {
        CacheZone {
            name,
            shm,
            hasher: OnceCell::new(),
            secret: OnceCell::new(),
            questions: RefCell::new(Vec::new()),
        }
    }

    /// Registers a question asked through this zone; called while the configuration is
    /// merged, never from a request.
    pub fn add_question(&self, uri: &[u8]) {
        if let Ok(mut questions) = self.questions.try_borrow_mut() {
            if !questions.iter().any(|q| q == uri) {
                questions.push(uri.to_vec());
            }
        }
    }

    /// Every question registered for this zone.
    pub fn questions(&self) -> Vec<Vec<u8>> {
        self.questions
            .try_borrow()
            .map(|q| q.clone())
            .unwrap_or_default()
    }

    /// Takes the zone's lock, rebuilding the zone first if a dead worker left it torn.
    /// `None` only if the zone is not set up (or could not be rebuilt).
    fn lock(&self) -> Option<Locked<'_>> {
        // SAFETY: shm was created by ngx_shared_memory_add and is mapped before any
        // request; the slab pool header sits at its start.
        let shpool = unsafe { (*self.shm).shm.addr as *mut ngx_slab_pool_t };
        if shpool.is_null() {
            return None;
        }
        // SAFETY: the pool's mutex was created by ngx_init_zone_pool; it is the lock
        // nginx's master force-releases for a dead worker.
        unsafe { ngx_shmtx_lock(ptr::addr_of_mut!((*shpool).mutex)) };
        let mut guard = Locked {
            cz: self,
            shpool,
            // SAFETY: the lock is held; data is our header (set by init_zone or rebuild).
            zone: unsafe { (*shpool).data as *mut Zone },
            writing: false,
        };
        // SAFETY: the lock is held; a header with our magic has been fully written once.
        let sound = unsafe {
            !guard.zone.is_null()
                && (*guard.zone).magic == MAGIC
                && ptr::read_volatile(ptr::addr_of!((*guard.zone).dirty)) == 0
        };
        if !sound && !guard.rebuild() {
            return None;
        }
        Some(guard)
    }

    /// The cache key for a credential.
    pub fn tag(&self, credential: &[u8]) -> Option<[u8; TAG_LEN]> {
        if let Some(hasher) = self.hasher.get() {
            return Some(hasher.tag(credential));
        }
        let secret = self.lock()?.secret();
        let hasher = KeyHasher::new(&secret)?;
        Some(self.hasher.get_or_init(|| hasher).tag(credential))
    }

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
        if let Some(n) = unsafe { node.as_mut() } {
            if n.has_data != 0 && now_ms < n.expires_ms {
                n.last_used = now;
                if let Some(answer) = n.answer() {
                    return Lookup::Fresh(answer);
                }
            }
            if let Some(since) = waiting_since_ms {
                if n.failed_at_ms >= since && n.in_flight == 0 {
                    let stale = (n.has_data != 0 && now_ms < n.stale_until_ms)
                        .then(|| n.answer())
                        .flatten();
                    return Lookup::PeerFailed(stale);
                }
                if n.in_flight != 0 && now_ms < n.lock_until_ms && now_ms < since + lock.timeout_ms
                {
                    return Lookup::Wait;
                }
            } else if lock.enabled && n.in_flight != 0 && now_ms < n.lock_until_ms {
                return Lookup::Wait;
            }
        }
        // Without the lock, and for a waiter whose call gave nothing to share (an answer
        // that may not be cached) or that waited too long, each request calls itself.
        if !lock.enabled || waiting_since_ms.is_some() {
            return Lookup::Fetch { locked: false };
        }
        if node.is_null() {
            node = z.create_node(tag, now);
        }
        // SAFETY: the lock is held; node is live or null.
        match unsafe { node.as_mut() } {
            Some(n) => {
                n.in_flight = 1;
                n.lock_until_ms = now_ms + lock.timeout_ms;
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
        let ttl = ttl.filter(|_| z.is_newest(node, call));
        let Some(ttl) = ttl else {
            // SAFETY: the lock is held; node is live or null.
            if let Some(n) = unsafe { node.as_mut() } {
                n.in_flight = 0;
                if n.has_data == 0 && n.seq == 0 {
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
        // SAFETY: the lock is held; node is live. The reference ends before alloc,
        // which may touch other nodes.
        unsafe {
            let n = &mut *node;
            n.failed_at_ms = 0;
            if !n.blob.is_null() {
                ngx_slab_free_locked(z.shpool, n.blob as *mut c_void);
                n.blob = ptr::null_mut();
                n.has_data = 0;
            }
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
        n.expires_ms = now_ms + u64::from(ttl) * 1000;
        n.stale_until_ms = n.expires_ms + u64::from(use_stale) * 1000;
        z.touch(node, now);
    }

    /// Records that the call for `tag` failed, releasing its lock so waiters stop waiting
    /// (onto the stale or error path, not into calls of their own). Returns the stale
    /// answer if one may still be served.
    pub fn fail(&self, tag: &[u8; TAG_LEN]) -> Option<Answer> {
        let z = self.lock()?;
        let now_ms = now_ms();
        // SAFETY: the lock is held; find returns a live node or null.
        let n = unsafe { z.find(tag).as_mut() }?;
        n.in_flight = 0;
        n.failed_at_ms = now_ms.max(1);
        (n.has_data != 0 && now_ms < n.stale_until_ms)
            .then(|| n.answer())
            .flatten()
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
        if unsafe { node.as_ref() }.is_some_and(|n| n.seq > call) {
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
        // SAFETY: the lock is held; node is live, and its blob is freed and forgotten.
        // Waiters find no lock, no failure and no data: each calls for itself.
        unsafe {
            let n = &mut *node;
            if !n.blob.is_null() {
                ngx_slab_free_locked(z.shpool, n.blob as *mut c_void);
                n.blob = ptr::null_mut();
            }
            n.has_data = 0;
            n.in_flight = 0;
            n.lock_until_ms = 0;
            n.failed_at_ms = 0;
            n.seq = call;
        }
    }

    /// Removes the entry for `tag` on a logout (`identity_cache_purge`), and, under the
    /// same lock, makes every call in flight unable to store its answer; whether there
    /// was an entry.
    pub fn purge(&self, tag: &[u8; TAG_LEN]) -> bool {
        self.remove_entry(tag, true)
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

    fn warn_full(&self) {
        // SAFETY: the cycle's log is valid in a worker.
        let log = ngx::log::ngx_cycle_log().as_ptr();
        ngx_log_error!(
            NGX_LOG_WARN,
            log,
            "identity cache zone \"{}\" is full, evicting least recently used entries",
            self.name
        );
    }
}

/// The zone while its lock is held; dropping it releases the lock.
///
/// This type carries the one guarantee all zone code relies on: while a `Locked` exists,
/// this process holds the slab pool's mutex, so no other process reads or writes the
/// header, the nodes, the blobs or the pool. All of them are reached through raw
/// pointers into the mapping (never through a reference to the header), and a `&mut
/// Node` made from one lives only while no other pointer to that node is used.
struct Locked<'a> {
    cz: &'a CacheZone,
    shpool: *mut ngx_slab_pool_t,
    zone: *mut Zone,
    /// `Zone::dirty` was set by this holder and is cleared on drop.
    writing: bool,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if self.writing {
            // Every change above is in memory before the mark says "consistent".
            compiler_fence(Ordering::SeqCst);
            // SAFETY: the lock is held; zone is the live header.
            unsafe { ptr::write_volatile(ptr::addr_of_mut!((*self.zone).dirty), 0) };
        }
        // SAFETY: this guard took the mutex in CacheZone::lock.
        unsafe { ngx_shmtx_unlock(ptr::addr_of_mut!((*self.shpool).mutex)) };
    }
}

impl Locked<'_> {
    /// Marks the zone as being changed: a death from here until drop is detected.
    fn mark_dirty(&mut self) {
        if !self.writing {
            // SAFETY: the lock is held; zone is the live header.
            unsafe { ptr::write_volatile(ptr::addr_of_mut!((*self.zone).dirty), 1) };
            // No change below may be emitted before the mark.
            compiler_fence(Ordering::SeqCst);
            self.writing = true;
        }
    }

    /// Whether call `call`'s answer is newer than what `node` (live or null) records and
    /// than the last purge, and the call was numbered by this zone as it is now.
    fn is_newest(&self, node: *mut Node, call: u64) -> bool {
        // SAFETY: the lock is held; zone is the live header, node is live or null.
        unsafe {
            call > (*self.zone).barrier
                && call <= (*self.zone).seq
                && node.as_ref().is_none_or(|n| n.seq < call)
        }
    }

    fn secret(&self) -> [u8; 32] {
        // SAFETY: the lock is held; zone is the live header.
        unsafe { (*self.zone).secret }
    }

    /// Starts the zone afresh: a new slab pool and header, no entries, the same secret
    /// (so the keys workers have computed stay valid). False if even that fails.
    fn rebuild(&mut self) -> bool {
        let old = self.zone;
        // SAFETY: the lock is held. A header with our magic has a secret that is never
        // changed once written (a rebuild writes the same bytes), so it is readable even
        // in a torn zone.
        // The call number is a scalar, whole in any header: calls begun before the
        // rebuild keep their numbers, and the barrier keeps their answers out.
        let (secret, seq) = unsafe {
            match old.as_ref() {
                Some(z) if z.magic == MAGIC => (Some(z.secret), z.seq),
                _ => (None, 0),
            }
        };
        let known = self.cz.secret.get().copied();
        let Some(secret) = known.or(secret).or_else(random_secret) else {
            return false;
        };
        // SAFETY: the lock is held and shm is mapped.
        let size = unsafe { (*self.cz.shm).shm.size };
        // SAFETY: the lock is held, so no one else uses the pool. ngx_slab_init resets
        // the pool's bookkeeping only (not the mutex, not `data`); until the new header
        // is published in `data`, `data` still points at the old one, still marked dirty.
        let zone = unsafe {
            ngx_slab_init(self.shpool);
            (*self.shpool).set_log_nomem(0);
            new_zone(self.shpool, size, secret, seq)
        };
        if zone.is_null() {
            return false;
        }
        self.zone = zone;
        // new_zone leaves the header marked dirty: drop clears it.
        self.writing = true;
        let log = ngx::log::ngx_cycle_log().as_ptr();
        ngx_log_error!(
            NGX_LOG_WARN,
            log,
            "identity cache zone \"{}\" was left half-changed by a worker that died; \
             emptied it",
            self.cz.name
        );
        true
    }

    fn bucket(&self, tag: &[u8; TAG_LEN]) -> *mut *mut Node {
        let h = usize::from_le_bytes(tag[..8].try_into().unwrap_or([0; 8]));
        // SAFETY: the lock is held; buckets has bucket_mask + 1 slots.
        unsafe { (*self.zone).buckets.add(h & (*self.zone).bucket_mask) }
    }

    fn find(&self, tag: &[u8; TAG_LEN]) -> *mut Node {
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

    fn lru_head(&self) -> *mut ngx_queue_t {
        // SAFETY: the lock is held; a place expression, no reference is made.
        unsafe { ptr::addr_of_mut!((*self.zone).lru) }
    }

    fn tail(&self) -> *mut Node {
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
    fn touch(&mut self, node: *mut Node, now: u32) {
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

    fn create_node(&mut self, tag: &[u8; TAG_LEN], now: u32) -> *mut Node {
        let node = self.alloc(size_of::<Node>(), now) as *mut Node;
        if node.is_null() {
            return node;
        }
        let bucket = self.bucket(tag);
        let head = self.lru_head();
        // SAFETY: the lock is held (and the zone marked dirty by alloc); node is a fresh
        // slab allocation of a Node's size.
        unsafe {
            ptr::write(
                node,
                Node {
                    next: *bucket,
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
                },
            );
            *bucket = node;
            ngx_queue_insert_after(head, ptr::addr_of_mut!((*node).lru));
            (*self.zone).entries += 1;
        }
        node
    }

    /// Allocates from the zone, evicting least recently used entries while it is full.
    fn alloc(&mut self, size: usize, now: u32) -> *mut c_void {
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

    fn warn_full(&mut self, now: u32) {
        // SAFETY: the lock is held; zone is the live header.
        let last = unsafe { &mut (*self.zone).last_full_warning };
        if u64::from(now) >= *last + 60 {
            *last = u64::from(now);
            self.cz.warn_full();
        }
    }

    /// Frees up to two entries past their stale deadline from the LRU tail.
    fn expire_some(&mut self) {
        for _ in 0..2 {
            let tail = self.tail();
            // SAFETY: the lock is held; tail is a live node or null.
            match unsafe { tail.as_ref() } {
                Some(n) if n.in_flight == 0 && n.has_data != 0 && now_ms() >= n.stale_until_ms => {
                    self.remove_node(tail)
                }
                _ => return,
            }
        }
    }

    /// Evicts one entry, giving recently used ones a second chance. False when nothing
    /// could be evicted.
    fn evict_one(&mut self, now: u32) -> bool {
        let now_ms = now_ms();
        for round in 0..32 {
            let tail = self.tail();
            // SAFETY: the lock is held; tail is a live node or null.
            let Some(n) = (unsafe { tail.as_ref() }) else {
                return false;
            };
            let busy = n.in_flight != 0 && now_ms < n.lock_until_ms;
            let used_since_queued = n.last_used > n.queued_at;
            if busy || (used_since_queued && round < 31) {
                self.touch(tail, now);
                continue;
            }
            self.remove_node(tail);
            return true;
        }
        false
    }

    /// Unlinks and frees `node`, a live node of this zone.
    fn remove_node(&mut self, node: *mut Node) {
        self.mark_dirty();
        // SAFETY: the lock is held; node is live, linked in its bucket and in lru.
        unsafe {
            let mut link = self.bucket(&(*node).tag);
            while !(*link).is_null() {
                if *link == node {
                    *link = (*node).next;
                    break;
                }
                link = ptr::addr_of_mut!((**link).next);
            }
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
    fn answer(&self) -> Option<Answer> {
        if self.blob.is_null() {
            return None;
        }
        // SAFETY: blob holds blob_len bytes written by `store`, freed only under the
        // zone's lock, which the caller holds.
        let bytes = unsafe { core::slice::from_raw_parts(self.blob, self.blob_len as usize) };
        decode(self.status, bytes)
    }
}

fn random_secret() -> Option<[u8; 32]> {
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .ok()?;
    Some(secret)
}

/// Allocates and publishes (`shpool->data`) a fresh header, still marked dirty; null if
/// the pool has no room.
///
/// # Safety
/// The caller has the pool to itself (configuration time, or the lock held) and the
/// pool is freshly initialised.
unsafe fn new_zone(
    shpool: *mut ngx_slab_pool_t,
    size: usize,
    secret: [u8; 32],
    seq: u64,
) -> *mut Zone {
    let nbuckets = (size / 512).next_power_of_two().max(64);
    // SAFETY: per the caller.
    unsafe {
        let zone = ngx_slab_alloc_locked(shpool, size_of::<Zone>()) as *mut Zone;
        let buckets =
            ngx_slab_calloc_locked(shpool, nbuckets * size_of::<*mut Node>()) as *mut *mut Node;
        if zone.is_null() || buckets.is_null() {
            return ptr::null_mut();
        }
        ptr::write(
            zone,
            Zone {
                dirty: 1,
                magic: MAGIC,
                secret,
                buckets,
                bucket_mask: nbuckets - 1,
                lru: ngx_queue_t {
                    prev: ptr::null_mut(),
                    next: ptr::null_mut(),
                },
                entries: 0,
                last_full_warning: 0,
                seq,
                barrier: seq,
            },
        );
        ngx_queue_init(ptr::addr_of_mut!((*zone).lru));
        compiler_fence(Ordering::SeqCst);
        (*shpool).data = zone as *mut c_void;
        zone
    }
}

/// The zone's init callback: a reused zone (reload with the same name and size) keeps
/// its entries and secret; a new one gets a fresh header.
pub extern "C" fn init_zone(
    shm_zone: *mut ngx_shm_zone_t,
    _old_data: *mut c_void,
) -> ngx::ffi::ngx_int_t {
    // SAFETY: nginx passes a mapped zone whose slab pool it has initialised; no worker
    // of this cycle runs yet. A reused zone already has our header in `data` (and a
    // torn one is rebuilt by the first worker that takes the lock).
    let secret = unsafe {
        let shpool = (*shm_zone).shm.addr as *mut ngx_slab_pool_t;
        let old = (*shpool).data as *const Zone;
        match old.as_ref() {
            Some(z) if z.magic == MAGIC => z.secret,
            Some(_) => match random_secret() {
                // A header a worker of the old cycle left unreadable: the first worker
                // that takes the lock rebuilds it with this cycle's secret.
                Some(secret) => secret,
                None => return -1,
            },
            None => {
                (*shpool).set_log_nomem(0);
                let Some(secret) = random_secret() else {
                    return -1;
                };
                let zone = new_zone(shpool, (*shm_zone).shm.size, secret, 0);
                if zone.is_null() {
                    return -1;
                }
                (*zone).dirty = 0;
                secret
            }
        }
    };
    // SAFETY: a zone's data is the CacheZone set by identity_cache_zone, which lives in
    // the configuration; workers fork after this and inherit both cells.
    if let Some(cz) = unsafe { ((*shm_zone).data as *const CacheZone).as_ref() } {
        let _ = cz.secret.set(secret);
        if let Some(hasher) = KeyHasher::new(&secret) {
            let _ = cz.hasher.set(hasher);
        }
    }
    0
}
