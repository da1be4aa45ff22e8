//! The identity cache's decisions, apart from the shared memory that holds its entries:
//! what a lookup finds (fresh, wait for a peer's call, the peer failed, fetch), when an
//! answer may be stored (the call-number barrier), its deadlines, what a request does
//! with the answer of its own call (store, keep the stale one, settle a definitive
//! answer), and which entries expire or are evicted. The zone (src/cache*.rs) reads an
//! entry into an `EntryState`, asks here, and carries the decision out under its lock.
//!
//! Times are nginx's monotonic milliseconds (`ngx_current_msec`), shared by all workers.

/// How a lookup treats the key's lock (`identity_cache_lock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockPolicy {
    pub enabled: bool,
    pub timeout_ms: u64,
}

/// What the zone records for a key, as the decisions need it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryState {
    /// An answer is kept (a settled key records only a call number).
    pub has_data: bool,
    pub expires_ms: u64,
    pub stale_until_ms: u64,
    /// A request holds the key's lock (single flight).
    pub in_flight: bool,
    pub lock_until_ms: u64,
    /// When the last call for the key failed (0: never).
    pub failed_at_ms: u64,
}

impl EntryState {
    /// The kept answer may be served as it is.
    pub fn fresh(&self, now_ms: u64) -> bool {
        self.has_data && now_ms < self.expires_ms
    }

    /// The kept answer may be served while the user service fails
    /// (`identity_cache_use_stale`).
    pub fn stale_usable(&self, now_ms: u64) -> bool {
        self.has_data && now_ms < self.stale_until_ms
    }

    /// A request's call for the key is in flight and its lock has not run out.
    pub fn locked(&self, now_ms: u64) -> bool {
        self.in_flight && now_ms < self.lock_until_ms
    }

    /// Past its stale deadline and not being fetched: the zone may free it.
    pub fn expired(&self, now_ms: u64) -> bool {
        !self.in_flight && self.has_data && now_ms >= self.stale_until_ms
    }
}

/// What a lookup found; `A` is the decoded answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<A> {
    /// A fresh answer.
    Fresh(A),
    /// Another request is asking the user service for this key: wait and look again.
    Wait,
    /// The call this request waited for failed; the stale answer, if still allowed.
    PeerFailed(Option<A>),
    /// Ask the user service; `locked` when this request takes (holds) the key's lock.
    Fetch { locked: bool },
}

/// Decides a lookup of a key whose entry is `entry` (`None`: no entry). `read` decodes
/// the kept answer; it is called only when one may be served, and an answer that does
/// not decode counts as none. `waiting_since_ms` is set for a request that waited for
/// another's call. A `Fetch { locked: true }` asks the zone to take the key's lock
/// (until `lock_deadline`) for this request.
pub fn lookup<A>(
    entry: Option<&EntryState>,
    now_ms: u64,
    lock: LockPolicy,
    waiting_since_ms: Option<u64>,
    mut read: impl FnMut() -> Option<A>,
) -> Lookup<A> {
    if let Some(e) = entry {
        if e.fresh(now_ms) {
            if let Some(answer) = read() {
                return Lookup::Fresh(answer);
            }
        }
        if let Some(since) = waiting_since_ms {
            if e.failed_at_ms >= since && !e.in_flight {
                let stale = e.stale_usable(now_ms).then(&mut read).flatten();
                return Lookup::PeerFailed(stale);
            }
            if e.locked(now_ms) && now_ms < since + lock.timeout_ms {
                return Lookup::Wait;
            }
        } else if lock.enabled && e.locked(now_ms) {
            return Lookup::Wait;
        }
    }
    // Without the lock, and for a waiter whose call gave nothing to share (an answer
    // that may not be cached) or that waited too long, each request calls itself.
    Lookup::Fetch {
        locked: lock.enabled && waiting_since_ms.is_none(),
    }
}

/// Until when a lock taken now holds.
pub fn lock_deadline(now_ms: u64, lock: LockPolicy) -> u64 {
    now_ms + lock.timeout_ms
}

/// Whether call `call`'s answer may be stored: it is newer than the last purge (a
/// logout) or rebuild (`barrier`), was numbered by this zone as it is now (`seq`, the
/// last number given), and is newer than the call the key records, if any.
pub fn may_store(call: u64, barrier: u64, seq: u64, recorded: Option<u64>) -> bool {
    call > barrier && call <= seq && recorded.is_none_or(|s| s < call)
}

/// Whether a definitive answer of call `call` that may not be kept leaves the key as it
/// is, because the key records a newer call's answer.
pub fn settle_keeps_newer(recorded: Option<u64>, call: u64) -> bool {
    recorded.is_some_and(|s| s > call)
}

/// Whether an entry that was only locked (no answer, no call recorded) goes once its
/// lock is released without an answer.
pub fn empty_after_release(has_data: bool, recorded: u64) -> bool {
    !has_data && recorded == 0
}

/// The deadlines of an answer stored now: `(expires_ms, stale_until_ms)` for a `ttl` and
/// a `use_stale` window, both in seconds.
pub fn deadlines(now_ms: u64, ttl: u32, use_stale: u32) -> (u64, u64) {
    let expires = now_ms + u64::from(ttl) * 1000;
    (expires, expires + u64::from(use_stale) * 1000)
}

/// What eviction does with the entry at the LRU tail, in round `round` of at most
/// `EVICT_ROUNDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evict {
    /// Free it.
    Remove,
    /// Move it to the head: it is being fetched, or was used since it was queued.
    SecondChance,
}

pub const EVICT_ROUNDS: u32 = 32;

pub fn evict(entry: &EntryState, used_since_queued: bool, now_ms: u64, round: u32) -> Evict {
    // A locked entry is never freed; a used one is, in the last round.
    if entry.locked(now_ms) || (used_since_queued && round + 1 < EVICT_ROUNDS) {
        Evict::SecondChance
    } else {
        Evict::Remove
    }
}

/// What a request does in the cache with the answer of its own call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Keep it for `ttl` seconds; `call` is the call's number.
    Store { ttl: u32, call: u64 },
    /// A definitive answer that may not be kept: the key's older answer goes and is
    /// never served stale after it, and the key records `call`, so an older call's
    /// answer arriving later is not stored either (a revoked session is not brought
    /// back). Also releases the key's lock.
    Settle { call: u64 },
    /// The same without a call number (the zone could not give one): remove the entry.
    Remove,
    /// The call failed while this request held the key's lock: record the failure (its
    /// waiters go to the stale or error path) and use the stale answer if allowed.
    Fail,
    /// Nothing to record.
    Nothing,
}

/// `usable`: the call gave an answer the policy does not treat as an error; `ttl`: how
/// long it may be kept, if at all (`identity_cache_valid`, `Cache-Control`, `Vary`);
/// `held_lock`: this request held the key's lock; `call`: the call's number.
pub fn record(usable: bool, ttl: Option<u32>, held_lock: bool, call: Option<u64>) -> Record {
    if !usable {
        return if held_lock {
            Record::Fail
        } else {
            Record::Nothing
        };
    }
    match (ttl, call) {
        (Some(ttl), Some(call)) => Record::Store { ttl, call },
        (_, Some(call)) => Record::Settle { call },
        (_, None) => Record::Remove,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: LockPolicy = LockPolicy {
        enabled: true,
        timeout_ms: 1000,
    };
    const NO_LOCK: LockPolicy = LockPolicy {
        enabled: false,
        timeout_ms: 1000,
    };

    fn kept(expires_ms: u64, stale_until_ms: u64) -> EntryState {
        EntryState {
            has_data: true,
            expires_ms,
            stale_until_ms,
            ..EntryState::default()
        }
    }

    fn locked_until(lock_until_ms: u64) -> EntryState {
        EntryState {
            in_flight: true,
            lock_until_ms,
            ..EntryState::default()
        }
    }

    fn look(
        entry: Option<&EntryState>,
        now: u64,
        lock: LockPolicy,
        since: Option<u64>,
    ) -> Lookup<&'static str> {
        lookup(entry, now, lock, since, || Some("answer"))
    }

    #[test]
    fn no_entry_fetches_and_locks_only_with_the_lock_on() {
        assert_eq!(look(None, 0, LOCK, None), Lookup::Fetch { locked: true });
        assert_eq!(
            look(None, 0, NO_LOCK, None),
            Lookup::Fetch { locked: false }
        );
    }

    #[test]
    fn fresh_until_expiry() {
        let e = kept(100, 200);
        assert_eq!(look(Some(&e), 99, LOCK, None), Lookup::Fresh("answer"));
        assert_eq!(
            look(Some(&e), 100, LOCK, None),
            Lookup::Fetch { locked: true }
        );
        // A waiter finds the peer's fresh answer: coalesced.
        assert_eq!(look(Some(&e), 50, LOCK, Some(10)), Lookup::Fresh("answer"));
    }

    #[test]
    fn an_answer_that_does_not_decode_is_none() {
        let e = kept(100, 200);
        let found: Lookup<()> = lookup(Some(&e), 50, LOCK, None, || None);
        assert_eq!(found, Lookup::Fetch { locked: true });
    }

    #[test]
    fn a_locked_key_makes_others_wait_until_the_lock_runs_out() {
        let e = locked_until(500);
        assert_eq!(look(Some(&e), 499, LOCK, None), Lookup::Wait);
        assert_eq!(
            look(Some(&e), 500, LOCK, None),
            Lookup::Fetch { locked: true }
        );
        // Without identity_cache_lock nobody waits.
        assert_eq!(
            look(Some(&e), 10, NO_LOCK, None),
            Lookup::Fetch { locked: false }
        );
    }

    #[test]
    fn a_waiter_waits_at_most_the_timeout_then_calls_itself_unlocked() {
        let e = locked_until(10_000);
        assert_eq!(look(Some(&e), 1099, LOCK, Some(100)), Lookup::Wait);
        assert_eq!(
            look(Some(&e), 1100, LOCK, Some(100)),
            Lookup::Fetch { locked: false }
        );
    }

    #[test]
    fn a_waiter_whose_peer_failed_gets_the_stale_answer_or_none() {
        let mut e = kept(100, 300);
        e.failed_at_ms = 150;
        assert_eq!(
            look(Some(&e), 200, LOCK, Some(120)),
            Lookup::PeerFailed(Some("answer"))
        );
        assert_eq!(
            look(Some(&e), 300, LOCK, Some(120)),
            Lookup::PeerFailed(None)
        );
        // A failure from before the wait began is not this waiter's peer.
        assert_eq!(
            look(Some(&e), 200, LOCK, Some(160)),
            Lookup::Fetch { locked: false }
        );
        // A new call in flight is waited for, not taken as failed.
        e.in_flight = true;
        e.lock_until_ms = 1000;
        assert_eq!(look(Some(&e), 200, LOCK, Some(120)), Lookup::Wait);
    }

    #[test]
    fn a_waiter_whose_peer_settled_calls_itself() {
        // A settled key: no data, no lock, no failure.
        let e = EntryState::default();
        assert_eq!(
            look(Some(&e), 200, LOCK, Some(120)),
            Lookup::Fetch { locked: false }
        );
    }

    #[test]
    fn store_barrier() {
        // Newer than the purge, numbered by this zone, newer than the key's record.
        assert!(may_store(5, 4, 5, None));
        assert!(may_store(5, 4, 9, Some(3)));
        // Began before the last purge (a logout) or a rebuild.
        assert!(!may_store(4, 4, 9, None));
        // A number this zone never gave (it was rebuilt with a lower count).
        assert!(!may_store(10, 4, 9, None));
        // An older call's answer arriving after a newer one's.
        assert!(!may_store(6, 4, 9, Some(7)));
        assert!(!may_store(7, 4, 9, Some(7)));
    }

    #[test]
    fn settling_keeps_only_a_newer_record() {
        assert!(settle_keeps_newer(Some(8), 7));
        assert!(!settle_keeps_newer(Some(7), 7));
        assert!(!settle_keeps_newer(None, 7));
    }

    #[test]
    fn a_released_lock_leaves_nothing_behind() {
        assert!(empty_after_release(false, 0));
        assert!(!empty_after_release(false, 3));
        assert!(!empty_after_release(true, 0));
    }

    #[test]
    fn deadlines_in_seconds() {
        assert_eq!(deadlines(1000, 60, 30), (61_000, 91_000));
        assert_eq!(lock_deadline(1000, LOCK), 2000);
    }

    #[test]
    fn expiry_spares_entries_in_flight_and_in_their_stale_window() {
        let mut e = kept(100, 200);
        assert!(!e.expired(199));
        assert!(e.expired(200));
        e.in_flight = true;
        assert!(!e.expired(300));
        assert!(!EntryState::default().expired(300));
    }

    #[test]
    fn eviction_gives_second_chances_but_never_frees_a_locked_entry() {
        let idle = kept(100, 200);
        assert_eq!(evict(&idle, false, 0, 0), Evict::Remove);
        assert_eq!(evict(&idle, true, 0, 0), Evict::SecondChance);
        assert_eq!(evict(&idle, true, 0, EVICT_ROUNDS - 1), Evict::Remove);
        let busy = locked_until(500);
        assert_eq!(
            evict(&busy, false, 499, EVICT_ROUNDS - 1),
            Evict::SecondChance
        );
        assert_eq!(evict(&busy, false, 500, 0), Evict::Remove);
    }

    #[test]
    fn recording_a_call() {
        assert_eq!(
            record(true, Some(60), true, Some(4)),
            Record::Store { ttl: 60, call: 4 }
        );
        assert_eq!(
            record(true, None, true, Some(4)),
            Record::Settle { call: 4 }
        );
        assert_eq!(record(true, Some(60), false, None), Record::Remove);
        assert_eq!(record(true, None, false, None), Record::Remove);
        assert_eq!(record(false, Some(60), true, Some(4)), Record::Fail);
        assert_eq!(record(false, Some(60), false, Some(4)), Record::Nothing);
    }
}
