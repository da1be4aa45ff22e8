//! The identity cache zone's structure: one zone per `identity_cache_zone`, shared by
//! all workers, surviving reloads that keep its name and size; its header, its lock and
//! the rebuild after a dead worker. The entries' operations are in cache.rs, the node
//! bookkeeping in cache_nodes.rs, the decisions in `cache_policy`.
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

use nginx_sys::ngx_queue_init;
use ngx::ffi::{
    ngx_current_msec, ngx_queue_t, ngx_shm_zone_t, ngx_shmtx_lock, ngx_shmtx_unlock,
    ngx_slab_alloc_locked, ngx_slab_calloc_locked, ngx_slab_init, ngx_slab_pool_t, ngx_time,
    NGX_LOG_WARN,
};
use ngx::ngx_log_error;

use crate::cache_entry::{KeyHasher, TAG_LEN};
use crate::ngx_codes::{NGX_ERROR, NGX_OK};

/// Configuration-side handle of one zone (`shm_zone->data`); each worker keeps its own
/// copy of the keyed hash state.
pub struct CacheZone {
    pub name: String,
    pub shm: *mut ngx_shm_zone_t,
    pub(crate) hasher: OnceCell<KeyHasher>,
    /// The zone's key secret, read or drawn by the master in `init_zone` before workers
    /// fork, so every worker of a cycle keys with the same bytes whatever happens to the
    /// header in shared memory (a rebuild cut short by a dying worker included).
    pub(crate) secret: OnceCell<[u8; 32]>,
    /// The questions (`cache_entry::question`: a server's `identity_request` URI) asked
    /// through this zone, registered at configuration time, so a purge can remove a
    /// credential's entry for each of them.
    pub(crate) questions: RefCell<Vec<Vec<u8>>>,
    /// `identity_cache_sync`: set at configuration time for a synced zone.
    pub(crate) fleet: OnceCell<crate::fleet_conf::ZoneFleet>,
}

/// "IDZ3": a header this code wrote (with call numbers and the fleet link's lease; an
/// older header is rebuilt).
const MAGIC: u32 = 0x335a_4449;

#[repr(C)]
pub(crate) struct Zone {
    /// Set while a worker changes the zone's structure; see the module comment.
    pub(crate) dirty: u32,
    pub(crate) magic: u32,
    pub(crate) secret: [u8; 32],
    pub(crate) buckets: *mut *mut Node,
    pub(crate) bucket_mask: usize,
    pub(crate) lru: ngx_queue_t,
    pub(crate) entries: usize,
    pub(crate) last_full_warning: u64,
    /// The number of the last call begun (`CacheZone::begin_call`); a purge takes one too.
    pub(crate) seq: u64,
    /// Calls numbered up to this may not store: they began before the last purge (a
    /// logout) or before the zone was rebuilt.
    pub(crate) barrier: u64,
    /// `identity_cache_sync`: the zone's Redis link was last seen up until this instant
    /// (nginx's millisecond clock). A lease, renewed every second by the subscribing
    /// worker: a rebuilt header, a dead subscriber or a lost link all read as offline.
    pub(crate) online_until_ms: u64,
}

#[repr(C)]
pub(crate) struct Node {
    pub(crate) next: *mut Node,
    pub(crate) lru: ngx_queue_t,
    pub(crate) tag: [u8; TAG_LEN],
    pub(crate) status: u16,
    pub(crate) in_flight: u8,
    pub(crate) has_data: u8,
    pub(crate) blob_len: u32,
    pub(crate) queued_at: u32,
    /// Deadlines on nginx's monotonic millisecond clock, shared by all workers.
    pub(crate) expires_ms: u64,
    pub(crate) stale_until_ms: u64,
    pub(crate) last_used: u32,
    pub(crate) lock_until_ms: u64,
    pub(crate) failed_at_ms: u64,
    /// The number of the call whose answer this node records: an older call's answer,
    /// arriving later, never replaces it. A node without data but with a number is the
    /// record of a definitive answer that was not kept (`CacheZone::settle`).
    pub(crate) seq: u64,
    pub(crate) blob: *mut u8,
}

pub(crate) fn now_secs() -> u32 {
    u32::try_from(ngx_time()).unwrap_or(u32::MAX)
}

pub(crate) fn now_ms() -> u64 {
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
            fleet: OnceCell::new(),
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
    pub(crate) fn lock(&self) -> Option<Locked<'_>> {
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
        Some(self.hasher()?.tag(credential))
    }

    /// The zone's keyed hash, made from its secret on first use.
    pub fn hasher(&self) -> Option<&KeyHasher> {
        if let Some(hasher) = self.hasher.get() {
            return Some(hasher);
        }
        let secret = self.lock()?.secret();
        let hasher = KeyHasher::new(&secret)?;
        Some(self.hasher.get_or_init(|| hasher))
    }

    pub(crate) fn warn_full(&self) {
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
pub(crate) struct Locked<'a> {
    pub(crate) cz: &'a CacheZone,
    pub(crate) shpool: *mut ngx_slab_pool_t,
    pub(crate) zone: *mut Zone,
    /// `Zone::dirty` was set by this holder and is cleared on drop.
    pub(crate) writing: bool,
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
    pub(crate) fn mark_dirty(&mut self) {
        if !self.writing {
            // SAFETY: the lock is held; zone is the live header.
            unsafe { ptr::write_volatile(ptr::addr_of_mut!((*self.zone).dirty), 1) };
            // No change below may be emitted before the mark.
            compiler_fence(Ordering::SeqCst);
            self.writing = true;
        }
    }

    pub(crate) fn secret(&self) -> [u8; 32] {
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
    // SAFETY: per the caller, the pool is ours to allocate from.
    let zone = unsafe { ngx_slab_alloc_locked(shpool, size_of::<Zone>()) } as *mut Zone;
    // SAFETY: as above; zeroed buckets are empty chains.
    let buckets = unsafe { ngx_slab_calloc_locked(shpool, nbuckets * size_of::<*mut Node>()) }
        as *mut *mut Node;
    if zone.is_null() || buckets.is_null() {
        return ptr::null_mut();
    }
    let header = Zone {
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
        online_until_ms: 0,
    };
    // SAFETY: zone is a fresh allocation of a Zone's size, ours alone until published.
    unsafe {
        ptr::write(zone, header);
        ngx_queue_init(ptr::addr_of_mut!((*zone).lru));
    }
    // The header is whole before `data` points at it.
    compiler_fence(Ordering::SeqCst);
    // SAFETY: per the caller; publishing the header to the next lock holder.
    unsafe { (*shpool).data = zone as *mut c_void };
    zone
}

/// The zone's init callback: a reused zone (reload with the same name and size) keeps
/// its entries and secret; a new one gets a fresh header.
pub extern "C" fn init_zone(
    shm_zone: *mut ngx_shm_zone_t,
    _old_data: *mut c_void,
) -> ngx::ffi::ngx_int_t {
    // A reused zone already has our header in `data` (a torn one is rebuilt by the
    // first worker that takes the lock).
    // SAFETY: nginx passes a mapped zone whose slab pool it has initialised, its header
    // at the start; no worker of this cycle runs yet.
    let (shpool, size) = unsafe {
        (
            (*shm_zone).shm.addr as *mut ngx_slab_pool_t,
            (*shm_zone).shm.size,
        )
    };
    // SAFETY: as above; `data` is null or a header this module wrote.
    let old = unsafe { ((*shpool).data as *const Zone).as_ref() };
    let secret = match old {
        Some(z) if z.magic == MAGIC => z.secret,
        // A header a worker of the old cycle left unreadable: the first worker that
        // takes the lock rebuilds it with this cycle's secret.
        Some(_) => match random_secret() {
            Some(secret) => secret,
            None => return NGX_ERROR,
        },
        None => {
            // SAFETY: as above; a bit of the pool's header, before any worker runs.
            unsafe { (*shpool).set_log_nomem(0) };
            let Some(secret) = random_secret() else {
                return NGX_ERROR;
            };
            // SAFETY: no worker of this cycle runs yet: the pool is ours, and fresh.
            let zone = unsafe { new_zone(shpool, size, secret, 0) };
            if zone.is_null() {
                return NGX_ERROR;
            }
            // SAFETY: zone is the header new_zone just wrote and published.
            unsafe { (*zone).dirty = 0 };
            secret
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
    NGX_OK
}
