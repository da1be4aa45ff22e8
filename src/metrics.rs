//! The metrics' counters, in a shared memory zone of the module's own, so every worker
//! counts into the same numbers and a reload keeps them.
//!
//! The zone (`ZONE_NAME`, tagged with this module) exists once `identity_metrics`
//! appears in the configuration; without it every `count_*` is a null check. nginx
//! reuses it on a reload (same name and size) and the master's `init_zone` keeps a
//! header whose magic and version it recognises. Each worker finds it in
//! `init_process`, after the fork.
//!
//! Counting takes no lock: every counter is an `AtomicU64`, added to with one atomic
//! instruction, so a worker dying at any instant leaves each counter either before or
//! after its add, never torn. Each worker adds into its own slot (by `ngx_worker`; the
//! old and new workers of a reload may share one, which atomics make harmless) and a
//! scrape sums the slots. Per cache zone, the counters are in a table keyed by a hash
//! of the zone's name, whose slot a worker claims with a compare-and-swap.

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use identity_core::metrics_text::{
    self as text, Snapshot, BUCKET_COUNT, RESULTS, SEALED_REASONS, STATUSES, ZONE_COUNTERS,
};
use ngx::ffi::{
    ngx_conf_t, ngx_cycle_t, ngx_http_request_t, ngx_int_t, ngx_shm_zone_t, ngx_slab_calloc,
    ngx_slab_pool_t,
};

use crate::decision::IdentityStatus;
use crate::module::module;
use crate::ngx_codes::{NGX_ERROR, NGX_OK};
use crate::request_ctx::{RequestCtx, State};
use crate::sealed::OpenError;

/// A name no `identity_cache_zone` can have (those stop at the first colon); the
/// layout's version is in it, so a module with another layout gets a zone of its own.
pub const ZONE_NAME: &str = "identity:metrics:1";
const ZONE_SIZE: usize = 64 * 1024;
/// "IDMETRIC".
const MAGIC: u64 = 0x4349_5254_454d_4449;
const VERSION: u64 = 1;
const WORKER_SLOTS: usize = 32;
const CACHE_ZONES: usize = 64;

/// One worker's counters; a cache line of its own so workers do not share lines.
#[repr(C, align(64))]
struct Slot {
    statuses: [AtomicU64; STATUSES.len()],
    results: [AtomicU64; RESULTS.len()],
    buckets: [AtomicU64; BUCKET_COUNT],
    duration_sum_ms: AtomicU64,
    sealed: [AtomicU64; SEALED_REASONS.len()],
}

/// One cache zone's counters; `key` is a hash of its name, 0 while the slot is free.
#[repr(C)]
struct ZoneSlot {
    key: AtomicU64,
    counters: [AtomicU64; ZONE_COUNTERS],
}

#[repr(C)]
struct Shared {
    magic: u64,
    version: u64,
    slots: [Slot; WORKER_SLOTS],
    zones: [ZoneSlot; CACHE_ZONES],
}

/// This worker's view of the zone; null without `identity_metrics` (or in the master).
static SHARED: AtomicPtr<Shared> = AtomicPtr::new(ptr::null_mut());

fn shared<'a>() -> Option<&'a Shared> {
    // SAFETY: null, or the zone's header, mapped for the worker's whole life; every
    // field written after init is an atomic.
    unsafe { SHARED.load(Ordering::Relaxed).as_ref() }
}

fn my_slot(s: &Shared) -> &Slot {
    // SAFETY: a plain read of the worker's number, written before the worker starts.
    let worker: usize = unsafe { ngx::ffi::ngx_worker };
    &s.slots[worker % WORKER_SLOTS]
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// `identity_metrics` seen in the configuration: makes sure the zone exists.
pub fn add_zone(cf: &mut ngx_conf_t) -> Result<(), ()> {
    crate::module::add_module_zone(cf, ZONE_NAME, ZONE_SIZE, Some(init_zone))
        .map(|_| ())
        .ok_or(())
}

/// The zone's init callback, in the master before workers fork: a reused zone keeps a
/// header it recognises; otherwise (a new zone, or one this layout does not know) a
/// fresh, zeroed header is allocated and published.
extern "C" fn init_zone(shm_zone: *mut ngx_shm_zone_t, _old: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx passes a mapped zone with its slab pool at the start.
    let shpool = unsafe { (*shm_zone).shm.addr as *mut ngx_slab_pool_t };
    // SAFETY: as above; `data` is null or a header this module published.
    let old = unsafe { ((*shpool).data as *const Shared).as_ref() };
    if old.is_some_and(|s| s.magic == MAGIC && s.version == VERSION) {
        return NGX_OK;
    }
    // SAFETY: the pool is initialised; ngx_slab_calloc takes its lock. An unknown old
    // header is left alone: a worker of the old cycle may still be counting into it.
    let fresh = unsafe { ngx_slab_calloc(shpool, size_of::<Shared>()) } as *mut Shared;
    if fresh.is_null() || fresh as usize % align_of::<Shared>() != 0 {
        return NGX_ERROR;
    }
    // SAFETY: a fresh zeroed allocation (all counters 0), ours until published.
    unsafe {
        (*fresh).magic = MAGIC;
        (*fresh).version = VERSION;
        (*shpool).data = fresh as *mut c_void;
    }
    NGX_OK
}

/// The module's `init_process`: finds the zone of the cycle this worker serves.
pub extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // SAFETY: nginx passes its live cycle.
    let zone = unsafe { find_zone(cycle) };
    let header = zone.map_or(ptr::null_mut(), |z| {
        // A mapped zone of this module with its slab pool at the start.
        let shpool = z.shm.addr as *const ngx_slab_pool_t;
        // SAFETY: as above; init_zone published a recognised header (or failed the start).
        let data = unsafe { (*shpool).data as *mut Shared };
        // SAFETY: data is null or a header this module wrote.
        match unsafe { data.as_ref() } {
            Some(s) if s.magic == MAGIC && s.version == VERSION => data,
            _ => ptr::null_mut(),
        }
    });
    SHARED.store(header, Ordering::Relaxed);
    NGX_OK
}

/// Every shared zone of this module in `cycle`.
///
/// # Safety
/// `cycle` is a live cycle.
pub unsafe fn module_zones<'a>(cycle: *const ngx_cycle_t) -> Vec<&'a ngx_shm_zone_t> {
    let mut out = Vec::new();
    let tag = module() as *const _ as *mut c_void;
    // SAFETY: per the caller; shared_memory is an ngx_list_t of ngx_shm_zone_t.
    let mut part = unsafe { ptr::addr_of!((*cycle).shared_memory.part) };
    // SAFETY: each part holds nelts zones; next is null at the end.
    while let Some(p) = unsafe { part.as_ref() } {
        let zones = p.elts as *const ngx_shm_zone_t;
        for i in 0..p.nelts {
            // SAFETY: i < nelts.
            let z = unsafe { &*zones.add(i) };
            if z.tag == tag {
                out.push(z);
            }
        }
        part = p.next;
    }
    out
}

/// # Safety
/// `cycle` is a live cycle.
unsafe fn find_zone<'a>(cycle: *const ngx_cycle_t) -> Option<&'a ngx_shm_zone_t> {
    // SAFETY: per the caller.
    unsafe { module_zones(cycle) }
        .into_iter()
        .find(|z| z.shm.name.as_bytes() == ZONE_NAME.as_bytes())
}

/// A verdict was given; counted on the request's first (not after a redirect into a
/// location asking the same question). Stale and coalesced answers count for their zone.
pub fn count_verdict(ctx: &RequestCtx) {
    let Some(s) = shared() else { return };
    if !ctx.concluded_at.get().0.is_null() {
        return;
    }
    let Some(status) = ctx.status.get() else {
        return;
    };
    let index = match status {
        IdentityStatus::Ok => 0,
        IdentityStatus::Hit => 1,
        IdentityStatus::Miss => 2,
        IdentityStatus::Stale => 3,
        IdentityStatus::Coalesced => 4,
        IdentityStatus::Sealed => 5,
        IdentityStatus::Anonymous => 6,
        IdentityStatus::Denied => 7,
        IdentityStatus::Error => 9,
        #[allow(unreachable_patterns)]
        other => match text::status_index(other.as_str()) {
            Some(i) => i,
            None => return,
        },
    };
    add(&my_slot(s).statuses[index]);
    let event = match status {
        IdentityStatus::Stale => text::STALE,
        IdentityStatus::Coalesced => text::COALESCED,
        _ => return,
    };
    if let Some(cache) = ctx.cache.get() {
        count_zone(&cache.zone().name, event);
    }
}

/// The identity subrequest `sr` was finalized with `rc`; counted on the first call only
/// (nginx calls again after building an error page).
// time_t is not i64 on every platform.
#[allow(clippy::unnecessary_cast)]
pub fn count_service_call(sr: &ngx_http_request_t, rc: ngx_int_t, ctx: &RequestCtx, done: bool) {
    let Some(s) = shared() else { return };
    if ctx.state.get() == State::Answered {
        return;
    }
    let nginx_status = (300..1000)
        .contains(&rc)
        .then(|| u16::try_from(rc).unwrap_or(0));
    // SAFETY: upstream is null or the subrequest's live upstream; its state is null or
    // an element of the subrequest's upstream_states.
    let connected = unsafe {
        match sr.upstream.as_ref().and_then(|u| u.state.as_ref()) {
            Some(state) => state.connect_time != ngx::ffi::ngx_msec_t::MAX,
            None => true,
        }
    };
    let call = text::ServiceCall {
        nginx_status,
        status: nginx_status.unwrap_or(u16::try_from(sr.headers_out.status).unwrap_or(0)),
        failed: rc == NGX_ERROR,
        overflow: ctx.body_failure.get() == Some(crate::subrequest::TOO_LARGE),
        complete: done,
        connected,
    };
    let slot = my_slot(s);
    add(&slot.results[text::classify(&call).index()]);
    // SAFETY: nginx's cached time, updated by this process's own event loop.
    let now = unsafe { &*ngx::ffi::ngx_cached_time };
    let start = (sr.start_sec as i64) * 1000 + sr.start_msec as i64;
    let ms = (now.sec as i64 * 1000 + now.msec as i64 - start).max(0) as u64;
    add(&slot.buckets[text::bucket_index(ms)]);
    slot.duration_sum_ms.fetch_add(ms, Ordering::Relaxed);
}

/// A sealed cookie was present but not accepted.
pub fn count_sealed_failure(e: OpenError) {
    if let Some(s) = shared() {
        add(&my_slot(s).sealed[text::sealed_reason_index(e)]);
    }
}

/// An entry of the cache zone `zone` was evicted to make room.
pub fn count_eviction(zone: &str) {
    count_zone(zone, text::EVICTIONS);
}

/// A purge of the cache zone `zone`; counted when it removed an entry. Returns `removed`.
pub fn count_purge(zone: &str, removed: bool) -> bool {
    if removed {
        count_zone(zone, text::PURGES);
    }
    removed
}

/// FNV-1a of a zone's name, never 0 (the mark of a free slot).
fn zone_key(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// The counters of the cache zone `name`, claiming a free slot for a zone not seen yet.
/// `None` when the table is full (more zone names than it holds since the start).
fn zone_slot<'a>(s: &'a Shared, name: &str, claim: bool) -> Option<&'a ZoneSlot> {
    let key = zone_key(name);
    for z in &s.zones {
        let current = z.key.load(Ordering::Relaxed);
        if current == key {
            return Some(z);
        }
        if current == 0 {
            if !claim {
                return None;
            }
            match z
                .key
                .compare_exchange(0, key, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(z),
                // Another worker claimed it meanwhile, maybe for this zone.
                Err(k) if k == key => return Some(z),
                Err(_) => continue,
            }
        }
    }
    None
}

fn count_zone(zone: &str, event: usize) {
    if let Some(z) = shared().and_then(|s| zone_slot(s, zone, true)) {
        add(&z.counters[event]);
    }
}

/// Every counter summed over the workers' slots, without the cache zones' gauges;
/// `None` without the zone.
pub fn snapshot() -> Option<Snapshot> {
    let s = shared()?;
    let mut snap = Snapshot::default();
    let sum = |into: &mut [u64], from: &[AtomicU64]| {
        for (a, b) in into.iter_mut().zip(from) {
            *a = a.wrapping_add(b.load(Ordering::Relaxed));
        }
    };
    for slot in &s.slots {
        sum(&mut snap.statuses, &slot.statuses);
        sum(&mut snap.results, &slot.results);
        sum(&mut snap.buckets, &slot.buckets);
        sum(&mut snap.sealed, &slot.sealed);
        snap.duration_sum_ms = snap
            .duration_sum_ms
            .wrapping_add(slot.duration_sum_ms.load(Ordering::Relaxed));
    }
    Some(snap)
}

/// The counters of the cache zone `name` (zeros if it has counted nothing yet).
pub fn zone_counters(name: &str) -> [u64; ZONE_COUNTERS] {
    let mut out = [0; ZONE_COUNTERS];
    if let Some(z) = shared().and_then(|s| zone_slot(s, name, false)) {
        for (o, c) in out.iter_mut().zip(&z.counters) {
            *o = c.load(Ordering::Relaxed);
        }
    }
    out
}
