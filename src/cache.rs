//! The shared-memory identity cache: one zone per `identity_cache_zone`, shared by all
//! workers, surviving reloads that keep its name and size.
//!
//! Layout in the zone's slab pool: a `Zone` header (lock, secret, hash buckets, LRU
//! queue) and, per credential, a 128-byte-class `Node` plus its encoded answer. Keys are
//! HMAC-SHA256 tags of the credential under the zone's own secret. A hit takes the lock
//! shared, copies the answer out and marks the node used with an atomic store: no
//! allocation and no write to the zone's structure. LRU order is kept by the writers:
//! eviction walks the queue from the tail and gives a node that was used since it was
//! queued a second chance.

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::cell::{OnceCell, RefCell};
use std::io::Read;

use nginx_sys::{ngx_queue_init, ngx_queue_insert_after, ngx_queue_remove};
use ngx::ffi::{
    ngx_current_msec, ngx_queue_t, ngx_shm_zone_t, ngx_slab_alloc_locked, ngx_slab_calloc_locked,
    ngx_slab_free_locked, ngx_slab_pool_t, ngx_time, NGX_LOG_WARN,
};
use ngx::ngx_log_error;
use ngx::sync::RwLock;

use crate::cache_entry::{decode, encode, KeyHasher, TAG_LEN};
use crate::decision::Answer;

/// Configuration-side handle of one zone (`shm_zone->data`); each worker keeps its own
/// copy of the keyed hash state.
pub struct CacheZone {
    pub name: String,
    pub shm: *mut ngx_shm_zone_t,
    zone: *mut Zone,
    hasher: OnceCell<Option<KeyHasher>>,
    /// The questions (`cache_entry::question`: a server's `identity_request` URI) asked
    /// through this zone, registered at configuration time, so a purge can remove a
    /// credential's entry for each of them.
    questions: RefCell<Vec<Vec<u8>>>,
}

#[repr(C)]
struct Zone {
    lock: RwLock<()>,
    secret: [u8; 32],
    buckets: *mut *mut Node,
    bucket_mask: usize,
    lru: ngx_queue_t,
    entries: usize,
    last_full_warning: AtomicU64,
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
    last_used: AtomicU32,
    lock_until_ms: u64,
    failed_at_ms: u64,
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
            zone: ptr::null_mut(),
            hasher: OnceCell::new(),
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

    fn shpool(&self) -> *mut ngx_slab_pool_t {
        // SAFETY: shm was created by ngx_shared_memory_add and mapped before any request.
        unsafe { (*self.shm).shm.addr as *mut ngx_slab_pool_t }
    }

    fn zone(&self) -> Option<&Zone> {
        // SAFETY: set by init_zone before workers start; lives as long as the mapping.
        unsafe { self.zone.as_ref() }
    }

    /// The cache key for a credential.
    pub fn tag(&self, credential: &[u8]) -> Option<[u8; TAG_LEN]> {
        let zone = self.zone()?;
        let hasher = self
            .hasher
            .get_or_init(|| KeyHasher::new(&zone.secret))
            .as_ref()?;
        Some(hasher.tag(credential))
    }

    /// Finds `tag`. `waiting_since_ms` is set for a request that waited on another's call.
    pub fn lookup(
        &self,
        tag: &[u8; TAG_LEN],
        lock: LockPolicy,
        waiting_since_ms: Option<u64>,
    ) -> Lookup {
        let Some(zone) = self.zone() else {
            return Lookup::Fetch { locked: false };
        };
        let (now, now_ms) = (now_secs(), now_ms());
        {
            let _read = zone.lock.read();
            // SAFETY: nodes are only changed under the write lock, which is excluded here.
            if let Some(node) = unsafe { zone.find(tag).as_ref() } {
                if node.has_data != 0 && now_ms < node.expires_ms {
                    node.last_used.store(now, Ordering::Relaxed);
                    if let Some(answer) = node.answer() {
                        return Lookup::Fresh(answer);
                    }
                }
                if let Some(since) = waiting_since_ms {
                    if node.failed_at_ms >= since && node.in_flight == 0 {
                        let stale = (node.has_data != 0 && now_ms < node.stale_until_ms)
                            .then(|| node.answer())
                            .flatten();
                        return Lookup::PeerFailed(stale);
                    }
                    if node.in_flight != 0
                        && now_ms < node.lock_until_ms
                        && now_ms < since + lock.timeout_ms
                    {
                        return Lookup::Wait;
                    }
                } else if lock.enabled && node.in_flight != 0 && now_ms < node.lock_until_ms {
                    return Lookup::Wait;
                }
            }
        }
        // Without the lock, and for a waiter whose call gave nothing to share (an answer
        // that may not be cached) or that waited too long, each request calls itself.
        if !lock.enabled || waiting_since_ms.is_some() {
            return Lookup::Fetch { locked: false };
        }
        let _write = zone.lock.write();
        let shpool = self.shpool();
        // SAFETY: the write lock is held.
        unsafe {
            let mut node = zone.find(tag);
            if let Some(n) = node.as_ref() {
                if n.has_data != 0 && now_ms < n.expires_ms {
                    if let Some(answer) = n.answer() {
                        return Lookup::Fresh(answer);
                    }
                }
                if n.in_flight != 0 && now_ms < n.lock_until_ms {
                    return Lookup::Wait;
                }
            } else {
                node = self.create_node(zone, shpool, tag, now);
            }
            match node.as_mut() {
                Some(n) => {
                    n.in_flight = 1;
                    n.lock_until_ms = now_ms + lock.timeout_ms;
                    Lookup::Fetch { locked: true }
                }
                None => Lookup::Fetch { locked: false },
            }
        }
    }

    /// Keeps `answer` for `ttl` seconds (plus `use_stale` while failing) and releases the
    /// key's lock; `ttl` of `None` only releases it.
    pub fn store(&self, tag: &[u8; TAG_LEN], answer: &Answer, ttl: Option<u32>, use_stale: u32) {
        let Some(zone) = self.zone() else { return };
        let now = now_secs();
        let _write = zone.lock.write();
        let shpool = self.shpool();
        // SAFETY: the write lock is held.
        unsafe {
            self.expire_some(zone, shpool);
            let mut node = zone.find(tag);
            let Some(ttl) = ttl else {
                if let Some(n) = node.as_mut() {
                    n.in_flight = 0;
                    if n.has_data == 0 {
                        zone_remove(zone, shpool, node);
                    }
                }
                return;
            };
            if node.is_null() {
                node = self.create_node(zone, shpool, tag, now);
            }
            let Some(n) = node.as_mut() else { return };
            n.failed_at_ms = 0;
            if !n.blob.is_null() {
                ngx_slab_free_locked(shpool, n.blob as *mut c_void);
                n.blob = ptr::null_mut();
                n.has_data = 0;
            }
            // Marked busy while allocating, so making room never evicts this node.
            n.in_flight = 1;
            n.lock_until_ms = u64::MAX;
            let bytes = encode(answer);
            let blob = self.alloc(zone, shpool, bytes.len(), now) as *mut u8;
            n.in_flight = 0;
            n.lock_until_ms = 0;
            if blob.is_null() {
                zone_remove(zone, shpool, node);
                return;
            }
            ptr::copy_nonoverlapping(bytes.as_ptr(), blob, bytes.len());
            n.blob = blob;
            n.blob_len = bytes.len() as u32;
            n.status = answer.status;
            n.has_data = 1;
            let now_ms = now_ms();
            n.expires_ms = now_ms + u64::from(ttl) * 1000;
            n.stale_until_ms = n.expires_ms + u64::from(use_stale) * 1000;
            zone.touch(n, now);
        }
    }

    /// Records that the call for `tag` failed, releasing its lock so waiters stop waiting
    /// (onto the stale or error path, not into calls of their own). Returns the stale
    /// answer if one may still be served.
    pub fn fail(&self, tag: &[u8; TAG_LEN]) -> Option<Answer> {
        let zone = self.zone()?;
        let now_ms = now_ms();
        let _write = zone.lock.write();
        // SAFETY: the write lock is held.
        let node = unsafe { zone.find(tag).as_mut() }?;
        node.in_flight = 0;
        node.failed_at_ms = now_ms.max(1);
        (node.has_data != 0 && now_ms < node.stale_until_ms)
            .then(|| node.answer())
            .flatten()
    }

    /// Releases the key's lock without a result (the request went away).
    pub fn release(&self, tag: &[u8; TAG_LEN]) {
        self.store(tag, &Answer::default(), None, 0);
    }

    /// Removes the entry for `tag`; whether there was one.
    pub fn remove(&self, tag: &[u8; TAG_LEN]) -> bool {
        let Some(zone) = self.zone() else {
            return false;
        };
        let _write = zone.lock.write();
        // SAFETY: the write lock is held.
        unsafe {
            let node = zone.find(tag);
            if node.is_null() {
                return false;
            }
            let had_data = (*node).has_data != 0;
            zone_remove(zone, self.shpool(), node);
            had_data
        }
    }

    /// # Safety
    /// The zone's write lock is held.
    unsafe fn create_node(
        &self,
        zone: &Zone,
        shpool: *mut ngx_slab_pool_t,
        tag: &[u8; TAG_LEN],
        now: u32,
    ) -> *mut Node {
        // SAFETY: per the caller.
        let node = unsafe { self.alloc(zone, shpool, size_of::<Node>(), now) } as *mut Node;
        if node.is_null() {
            return node;
        }
        let zone_mut = zone as *const Zone as *mut Zone;
        // SAFETY: node is a fresh slab allocation; the write lock is held.
        unsafe {
            ptr::write(
                node,
                Node {
                    next: ptr::null_mut(),
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
                    last_used: AtomicU32::new(now),
                    lock_until_ms: 0,
                    failed_at_ms: 0,
                    blob: ptr::null_mut(),
                },
            );
            let bucket = zone.bucket(tag);
            (*node).next = *bucket;
            *bucket = node;
            ngx_queue_insert_after(
                ptr::addr_of_mut!((*zone_mut).lru),
                ptr::addr_of_mut!((*node).lru),
            );
            (*zone_mut).entries += 1;
        }
        node
    }

    /// Allocates from the zone, evicting least recently used entries while it is full.
    ///
    /// # Safety
    /// The zone's write lock is held.
    unsafe fn alloc(
        &self,
        zone: &Zone,
        shpool: *mut ngx_slab_pool_t,
        size: usize,
        now: u32,
    ) -> *mut c_void {
        for _ in 0..64 {
            // SAFETY: per the caller; the slab pool is ours to use under the lock.
            let p = unsafe { ngx_slab_alloc_locked(shpool, size) };
            if !p.is_null() {
                return p;
            }
            self.warn_full(zone, now);
            // SAFETY: per the caller.
            if !unsafe { evict_one(zone, shpool, now) } {
                break;
            }
        }
        ptr::null_mut()
    }

    fn warn_full(&self, zone: &Zone, now: u32) {
        let last = zone.last_full_warning.load(Ordering::Relaxed);
        if u64::from(now) >= last + 60 {
            zone.last_full_warning
                .store(u64::from(now), Ordering::Relaxed);
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

    /// Frees up to two entries past their stale deadline from the LRU tail.
    ///
    /// # Safety
    /// The zone's write lock is held.
    unsafe fn expire_some(&self, zone: &Zone, shpool: *mut ngx_slab_pool_t) {
        for _ in 0..2 {
            // SAFETY: per the caller.
            let tail = unsafe { zone.tail() };
            // SAFETY: tail is a live node or null.
            match unsafe { tail.as_ref() } {
                Some(n) if n.in_flight == 0 && n.has_data != 0 && now_ms() >= n.stale_until_ms => {
                    // SAFETY: per the caller.
                    unsafe { zone_remove(zone, shpool, tail) }
                }
                _ => return,
            }
        }
    }
}

impl Node {
    fn answer(&self) -> Option<Answer> {
        if self.blob.is_null() {
            return None;
        }
        // SAFETY: blob holds blob_len bytes written by `store`, freed only under the
        // write lock, which the caller excludes.
        let bytes = unsafe { core::slice::from_raw_parts(self.blob, self.blob_len as usize) };
        decode(self.status, bytes)
    }
}

impl Zone {
    fn bucket(&self, tag: &[u8; TAG_LEN]) -> *mut *mut Node {
        let h = usize::from_le_bytes(tag[..8].try_into().unwrap_or([0; 8]));
        // SAFETY: buckets has bucket_mask + 1 slots.
        unsafe { self.buckets.add(h & self.bucket_mask) }
    }

    fn find(&self, tag: &[u8; TAG_LEN]) -> *mut Node {
        // SAFETY: bucket chains hold live nodes; the caller holds the lock.
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

    /// # Safety
    /// The write lock is held.
    unsafe fn tail(&self) -> *mut Node {
        let head = ptr::addr_of!(self.lru) as *mut ngx_queue_t;
        // SAFETY: per the caller; lru links nodes through their `lru` field.
        unsafe {
            let last = (*head).prev;
            if last == head {
                return ptr::null_mut();
            }
            (last as *mut u8).sub(core::mem::offset_of!(Node, lru)) as *mut Node
        }
    }

    /// # Safety
    /// The write lock is held; `n` is in this zone.
    unsafe fn touch(&self, n: &mut Node, now: u32) {
        let head = ptr::addr_of!(self.lru) as *mut ngx_queue_t;
        // SAFETY: per the caller.
        unsafe {
            ngx_queue_remove(&mut n.lru);
            ngx_queue_insert_after(head, &mut n.lru);
        }
        n.queued_at = now;
        n.last_used.store(now, Ordering::Relaxed);
    }
}

/// Evicts one entry, giving recently used ones a second chance. False when nothing
/// could be evicted.
///
/// # Safety
/// The zone's write lock is held.
unsafe fn evict_one(zone: &Zone, shpool: *mut ngx_slab_pool_t, now: u32) -> bool {
    let now_ms = now_ms();
    for round in 0..32 {
        // SAFETY: per the caller.
        let tail = unsafe { zone.tail() };
        // SAFETY: tail is a live node or null.
        let Some(n) = (unsafe { tail.as_mut() }) else {
            return false;
        };
        let busy = n.in_flight != 0 && now_ms < n.lock_until_ms;
        let used_since_queued = n.last_used.load(Ordering::Relaxed) > n.queued_at;
        if busy || (used_since_queued && round < 31) {
            // SAFETY: per the caller.
            unsafe { zone.touch(n, now) };
            n.queued_at = now;
            continue;
        }
        // SAFETY: per the caller.
        unsafe { zone_remove(zone, shpool, tail) };
        return true;
    }
    false
}

/// # Safety
/// The write lock is held; `node` is a live node of `zone`.
unsafe fn zone_remove(zone: &Zone, shpool: *mut ngx_slab_pool_t, node: *mut Node) {
    let zone_mut = zone as *const Zone as *mut Zone;
    // SAFETY: per the caller.
    unsafe {
        let mut link = zone.bucket(&(*node).tag);
        while !(*link).is_null() {
            if *link == node {
                *link = (*node).next;
                break;
            }
            link = ptr::addr_of_mut!((**link).next);
        }
        ngx_queue_remove(ptr::addr_of_mut!((*node).lru));
        if !(*node).blob.is_null() {
            ngx_slab_free_locked(shpool, (*node).blob as *mut c_void);
        }
        ngx_slab_free_locked(shpool, node as *mut c_void);
        (*zone_mut).entries -= 1;
    }
}

fn random_secret() -> Option<[u8; 32]> {
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .ok()?;
    Some(secret)
}

/// The zone's init callback: a reused zone (reload with the same name and size) keeps
/// its entries and secret; a new one gets a fresh header.
pub extern "C" fn init_zone(
    shm_zone: *mut ngx_shm_zone_t,
    old_data: *mut c_void,
) -> ngx::ffi::ngx_int_t {
    // SAFETY: nginx passes the zone whose data is our CacheZone, and the previous
    // cycle's CacheZone (or null).
    let (shm_zone, cz) = unsafe { (&mut *shm_zone, &mut *((*shm_zone).data as *mut CacheZone)) };
    // SAFETY: as above.
    if let Some(old) = unsafe { (old_data as *const CacheZone).as_ref() } {
        cz.zone = old.zone;
        return 0;
    }
    let shpool = shm_zone.shm.addr as *mut ngx_slab_pool_t;
    // SAFETY: nginx initialised the slab pool in the fresh mapping; no worker runs yet.
    unsafe {
        if !(*shpool).data.is_null() {
            cz.zone = (*shpool).data as *mut Zone;
            return 0;
        }
        (*shpool).set_log_nomem(0);
    }
    let Some(secret) = random_secret() else {
        return -1;
    };
    let size = shm_zone.shm.size;
    let nbuckets = (size / 512).next_power_of_two().max(64);
    // SAFETY: single-threaded configuration time; the slab pool is fresh.
    unsafe {
        let zone = ngx_slab_alloc_locked(shpool, size_of::<Zone>()) as *mut Zone;
        let buckets =
            ngx_slab_calloc_locked(shpool, nbuckets * size_of::<*mut Node>()) as *mut *mut Node;
        if zone.is_null() || buckets.is_null() {
            return -1;
        }
        ptr::write(
            zone,
            Zone {
                lock: RwLock::new(()),
                secret,
                buckets,
                bucket_mask: nbuckets - 1,
                lru: ngx_queue_t {
                    prev: ptr::null_mut(),
                    next: ptr::null_mut(),
                },
                entries: 0,
                last_full_warning: AtomicU64::new(0),
            },
        );
        ngx_queue_init(ptr::addr_of_mut!((*zone).lru));
        (*shpool).data = zone as *mut c_void;
        cz.zone = zone;
    }
    0
}
