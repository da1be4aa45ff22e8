//! Revoked sealed cookies, in a shared memory zone of the module's own: a fixed table of
//! (digest, exp) slots that every worker reads on each sealed cookie it opens, and that
//! `identity_sealed_revoke` and the fleet's messages write.
//!
//! # A worker may die at any instant
//!
//! Writers take the zone's slab mutex, which nginx's master force-releases for a dead
//! worker. Readers take no lock. A slot is published by its `exp`, written last: a writer
//! first sets `exp` to 0 (free), then the digest, then the new `exp`. A reader reads
//! `exp`, the digest, and `exp` again, and trusts the slot only if the second read still
//! shows it in force; a writer that died half way leaves a free slot (`exp` 0),
//! never a torn entry a reader would match. Every field is an atomic, so no read races.
//!
//! # The key digests are made with
//!
//! The table outlives a reload, and a reload may change `secret=` (and with it every
//! cookie's digest). The table's header keeps the digest key of its current
//! configuration and the one before; the master updates both in `init_zone`, before
//! the workers that read them fork, and hands the earlier key to the new configuration,
//! whose workers also check a cookie's digest under it. A revocation in force is not
//! voided by a key change (one change back; it is kept until its `exp` only under the key
//! it was made with).
//!
//! Only expired or free slots are reused, and a digest is looked for within `PROBES`
//! slots of its hash: a full neighbourhood refuses the revocation (the caller reports
//! it) rather than evicting one still in force.

use core::cell::Cell;
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{fence, AtomicU64, Ordering};

use ngx::ffi::{
    ngx_conf_t, ngx_int_t, ngx_shm_zone_t, ngx_shmtx_lock, ngx_shmtx_unlock, ngx_slab_calloc,
    ngx_slab_pool_t,
};

use crate::config::ZoneRef;
use crate::module::MainConf;
use crate::ngx_codes::{NGX_ERROR, NGX_OK};

/// Not a name an `identity_cache_zone` can have (those stop at the first colon); the
/// layout's version is in it.
const ZONE_NAME: &str = "identity:revocations:2";
pub const SLOTS: usize = 16 * 1024;
const PROBES: usize = 64;
const ZONE_SIZE: usize = SLOTS * size_of::<Slot>() + 64 * 1024;
/// "IDREVOKE".
const MAGIC: u64 = 0x454b_4f56_4552_4449;

#[repr(C)]
struct Slot {
    /// Unix seconds until which the digest is revoked; 0 = free.
    exp: AtomicU64,
    digest: [AtomicU64; 4],
}

#[repr(C)]
struct Table {
    magic: u64,
    /// The digest key of the configuration that last set the table up, and (if
    /// `has_previous`) the one before it. Written by the master only, in `init_zone`.
    keys: [[u8; 32]; 2],
    has_previous: u64,
    slots: [Slot; SLOTS],
}

/// Why a revocation was not kept.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("the revocation table is not set up")]
    NoTable,
    #[error("the revocation table is full around this digest")]
    Full,
}

thread_local! {
    /// The configuration being read (set at postconfiguration, in the master): its
    /// `init_zone` records its digest key and learns the previous one.
    static CONFIGURING: Cell<*mut MainConf> = const { Cell::new(ptr::null_mut()) };
}

/// At postconfiguration, once `main.fleet_key` is set: `init_zone`, which nginx calls
/// later in the same configuration's set-up, reads it.
pub fn configuring(main: &mut MainConf) {
    CONFIGURING.with(|c| c.set(main));
}

/// Records `main`'s digest key in the table and hands `main` the one before, if it
/// differs.
///
/// # Safety
/// `table` is the zone's table, in the master, with no worker of `main` running yet.
unsafe fn record_key(table: *mut Table) {
    let main = CONFIGURING.with(|c| c.replace(ptr::null_mut()));
    // SAFETY: set by this configuration's postconfiguration; its pool is live while
    // nginx sets up its zones; nothing else uses it in the master now.
    let Some(main) = (unsafe { main.as_mut() }) else {
        return;
    };
    let Some(key) = main.fleet_key.as_ref().map(|k| k.digest_key()) else {
        return;
    };
    // SAFETY: per the caller; only the master writes the header, and workers never read it.
    unsafe {
        if (*table).keys[0] != key {
            (*table).keys[1] = (*table).keys[0];
            (*table).keys[0] = key;
            (*table).has_previous = 1;
        }
        if (*table).has_previous != 0 {
            main.previous_fleet_key = Some(identity_core::fleet::FleetKey::from_digest_key(
                (*table).keys[1],
            ));
        }
    }
}

/// Makes sure the zone exists (`identity_cache_sync`, `identity_sealed_revoke`).
pub fn add_zone(cf: &mut ngx_conf_t) -> Option<ZoneRef> {
    crate::module::add_module_zone(cf, ZONE_NAME, ZONE_SIZE, Some(init_zone)).map(ZoneRef)
}

/// In the master before workers fork: a reused zone keeps its table (revocations stay in
/// force across reloads); a new one gets a zeroed (all free) table.
extern "C" fn init_zone(shm_zone: *mut ngx_shm_zone_t, _old: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx passes a mapped zone with its slab pool at the start.
    let shpool = unsafe { (*shm_zone).shm.addr as *mut ngx_slab_pool_t };
    // SAFETY: as above; data is null or a table this module published.
    let old = unsafe { (*shpool).data as *mut Table };
    // SAFETY: as above.
    if unsafe { old.as_ref() }.is_some_and(|t| t.magic == MAGIC) {
        // SAFETY: the master, before this configuration's workers fork.
        unsafe { record_key(old) };
        return NGX_OK;
    }
    // SAFETY: the pool is initialised; ngx_slab_calloc takes its lock.
    let fresh = unsafe { ngx_slab_calloc(shpool, size_of::<Table>()) } as *mut Table;
    if fresh.is_null() {
        return NGX_ERROR;
    }
    // SAFETY: a fresh zeroed allocation, ours until published.
    unsafe {
        (*fresh).magic = MAGIC;
        (*shpool).data = fresh as *mut c_void;
    }
    // A fresh table has no previous key: its first configuration's is recorded.
    // SAFETY: the master, before this configuration's workers fork.
    unsafe { record_key(fresh) };
    NGX_OK
}

fn words(digest: &[u8; 32]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (word, chunk) in out.iter_mut().zip(digest.chunks_exact(8)) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        *word = u64::from_le_bytes(bytes);
    }
    out
}

fn probe(words: &[u64; 4]) -> impl Iterator<Item = usize> {
    let start = words[0] as usize % SLOTS;
    (0..PROBES).map(move |i| (start + i) % SLOTS)
}

fn now() -> u64 {
    u64::try_from(ngx::ffi::ngx_time()).unwrap_or(0)
}

/// The table of `zone`, if it is set up.
fn table<'a>(zone: ZoneRef) -> Option<(&'a Table, *mut ngx_slab_pool_t)> {
    // SAFETY: a zone nginx registered for this cycle; mapped in every worker.
    let shpool = unsafe { (*zone.0).shm.addr as *mut ngx_slab_pool_t };
    if shpool.is_null() {
        return None;
    }
    // SAFETY: init_zone published the table (or failed the start); every field written
    // after that is an atomic.
    let table = unsafe { ((*shpool).data as *const Table).as_ref() }?;
    (table.magic == MAGIC).then_some((table, shpool))
}

/// Whether `digest` is revoked now.
pub fn is_revoked(zone: ZoneRef, digest: &[u8; 32]) -> bool {
    let Some((table, _)) = table(zone) else {
        return false;
    };
    let want = words(digest);
    let now = now();
    probe(&want).any(|i| {
        let slot = &table.slots[i];
        let exp = slot.exp.load(Ordering::Acquire);
        if exp <= now {
            return false;
        }
        let seen = [0, 1, 2, 3].map(|w| slot.digest[w].load(Ordering::Relaxed));
        fence(Ordering::Acquire);
        // A slot being reused goes through exp 0 before its digest changes; an exp
        // extended meanwhile (the same digest revoked again) is still in force.
        seen == want && slot.exp.load(Ordering::Relaxed) > now
    })
}

/// Revokes `digest` until `exp` (unix seconds); a later `exp` of the same digest extends
/// it. A revocation already over is not kept.
pub fn revoke(zone: ZoneRef, digest: &[u8; 32], exp: u64) -> Result<(), RevokeError> {
    let (table, shpool) = table(zone).ok_or(RevokeError::NoTable)?;
    let now = now();
    if exp <= now {
        return Ok(());
    }
    let want = words(digest);
    // SAFETY: the pool's mutex, which the master force-releases for a dead worker.
    unsafe { ngx_shmtx_lock(ptr::addr_of_mut!((*shpool).mutex)) };
    let mut free = None;
    let mut done = false;
    for i in probe(&want) {
        let slot = &table.slots[i];
        let held = slot.exp.load(Ordering::Relaxed);
        if held > now {
            if [0, 1, 2, 3].map(|w| slot.digest[w].load(Ordering::Relaxed)) == want {
                slot.exp.fetch_max(exp, Ordering::Release);
                done = true;
                break;
            }
        } else if free.is_none() {
            free = Some(slot);
        }
    }
    if !done {
        if let Some(slot) = free {
            slot.exp.store(0, Ordering::Relaxed);
            // The slot reads as free before any word of its digest changes.
            fence(Ordering::Release);
            for (w, word) in want.iter().enumerate() {
                slot.digest[w].store(*word, Ordering::Relaxed);
            }
            slot.exp.store(exp, Ordering::Release);
            done = true;
        }
    }
    // SAFETY: taken above.
    unsafe { ngx_shmtx_unlock(ptr::addr_of_mut!((*shpool).mutex)) };
    if done {
        Ok(())
    } else {
        Err(RevokeError::Full)
    }
}
