//! The per-request state of an exchange (`RequestCtx`), the answer it holds
//! (`AnswerCell`, whose borrows never panic) and how a request finds it again.
//!
//! The context is only ever reached through shared references, with cells for what
//! changes: nginx calls this module's variable handlers (and header filters that read
//! them) from inside the calls the handler makes, so no `&mut` may be live then.

use std::borrow::Cow;

use core::cell::{Cell, OnceCell, Ref, RefCell, RefMut, UnsafeCell};
use core::ffi::c_void;
use core::ptr;

use ngx::ffi::{ngx_event_t, ngx_http_request_t, ngx_int_t, ngx_pool_cleanup_add};

use crate::cache::CacheZone;
use crate::cache_entry::{Cached, TAG_LEN};
use crate::claims::{Claims, ClaimsError};
use crate::config::IdentityConf;
use crate::decision::{Answer, IdentityStatus, Reason};
use crate::module::module;
use crate::pool::NoMemory;

/// Where a request is in the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Nothing asked yet.
    Start,
    /// The subrequest is in flight.
    Waiting,
    /// Another request (in any worker) is asking for the same key; a timer looks again.
    WaitingForPeer,
    /// The answer is in; the next visit applies it.
    Answered,
    /// Applied; a later visit of the access phase returns the same result.
    Finished(ngx_int_t),
}

/// What the last verdict was computed from, so a location reached by an internal
/// redirect can apply its own policy to the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    NoCredential,
    Answer,
}

/// Per-request state, kept in the main request's module context and, because nginx
/// clears module contexts on an internal redirect, found again through the request
/// pool's cleanup list (see `request_ctx`).
pub struct RequestCtx {
    pub state: Cell<State>,
    /// `None` until decided.
    pub status: Cell<Option<IdentityStatus>>,
    /// `$identity_reason`, set with `status`.
    pub reason: Cell<Option<Reason>>,
    /// What was found wrong on the way to the verdict (a failed call, a bad cookie),
    /// which the verdict's reason names.
    pub cause: Cell<Option<Reason>>,
    /// `ngx_current_msec` when the user-service call started, and how long it took.
    pub call_started_ms: Cell<u64>,
    pub service_ms: Cell<Option<u64>>,
    pub answer: AnswerCell,
    /// The identity subrequest, while one runs; its body filter fills `body`.
    pub subrequest: Cell<*mut ngx_http_request_t>,
    /// A `Cell`, taken and put back: no borrow flag that a re-entrant call could trip.
    pub body: Cell<Vec<u8>>,
    /// Why the body collected so far cannot be the answer (over identity_max_size, a
    /// file part that could not be read).
    pub body_failure: Cell<Option<&'static str>>,
    /// Whether the body filter saw the subrequest's last buffer: an answer that ends
    /// without it (cut short, reset, timed out) is not an answer.
    pub body_complete: Cell<bool>,
    /// The location whose question the answer is for.
    pub asked_by: Cell<*const IdentityConf>,
    /// The location (and `uri_changes` count) of the last verdict, to tell a new
    /// location after an internal redirect or `rewrite ... last` from a revisit.
    pub concluded_at: Cell<(*const IdentityConf, u32)>,
    pub basis: Cell<Basis>,
    /// Whether the verdict let an identity through (identity headers set).
    pub accepted: Cell<bool>,
    /// The location whose `identity_header` lines are in the request, if any.
    pub headers_from: Cell<*const IdentityConf>,
    pub max_size: Cell<usize>,
    /// Whether `$identity` and `$identity_claim_*` may read the answer's body.
    pub identity_visible: Cell<bool>,
    /// The answer's claims: parsed when a claim is first read, or set with the answer
    /// (a cache entry's index, a sealed cookie's parse).
    pub claims: OnceCell<Result<Claims, ClaimsError>>,
    /// Whether a claim was read: a body that offers none fails only a request that
    /// reads one (`claims_failed`), though a cache hit sets `claims` beforehand.
    pub claims_read: Cell<bool>,
    /// The cache entry this request uses, when `identity_cache` is on.
    pub cache: OnceCell<CacheUse>,
    /// Whether the answer came from this request's own subrequest.
    pub fetched: Cell<bool>,
    /// Whether the answer was opened from a sealed cookie.
    pub sealed: Cell<bool>,
    pub wait: WaitTimer,
}

/// A claim's text (`RequestCtx::claim`).
pub enum ClaimText {
    /// Bytes of the answer's body as they stand, which stay put for the rest of the
    /// request as `RequestCtx::identity`'s do: no copy is needed.
    InBody(*const u8, usize),
    /// Decoded text: a string with escapes, an array, an object.
    Owned(Vec<u8>),
}

/// This request's part in a cache zone.
pub struct CacheUse {
    pub zone: *const CacheZone,
    pub tag: [u8; TAG_LEN],
    pub outcome: Cell<IdentityStatus>,
    pub holds_lock: Cell<bool>,
    /// The number the zone gave this request's call (`CacheZone::begin_call`).
    pub call: Cell<Option<u64>>,
}

impl CacheUse {
    pub fn zone(&self) -> &CacheZone {
        // SAFETY: zones live in the configuration, which outlives every request.
        unsafe { &*self.zone }
    }
}

/// The timer a waiting request sleeps on; never a blocking wait.
pub struct WaitTimer {
    pub event: UnsafeCell<ngx_event_t>,
    pub since_ms: Cell<u64>,
    pub delay_ms: Cell<u64>,
}

impl WaitTimer {
    pub fn armed(&self) -> bool {
        // SAFETY: only nginx's timer code and this module touch the event, never at once.
        unsafe { (*self.event.get()).timer_set() != 0 }
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        if self.wait.armed() {
            // SAFETY: the event is in the timer tree and is about to be freed.
            unsafe { nginx_sys::ngx_del_timer(self.wait.event.get()) };
        }
        if let Some(cache) = self.cache.get() {
            if cache.holds_lock.get() {
                // The request ended before its call did: let waiters call themselves.
                cache.zone().release(&cache.tag);
            }
        }
    }
}

impl RequestCtx {
    fn new() -> Self {
        RequestCtx {
            state: Cell::new(State::Start),
            status: Cell::new(None),
            reason: Cell::new(None),
            cause: Cell::new(None),
            call_started_ms: Cell::new(0),
            service_ms: Cell::new(None),
            answer: AnswerCell::default(),
            subrequest: Cell::new(ptr::null_mut()),
            body: Cell::new(Vec::new()),
            body_failure: Cell::new(None),
            body_complete: Cell::new(false),
            asked_by: Cell::new(ptr::null()),
            concluded_at: Cell::new((ptr::null(), 0)),
            basis: Cell::new(Basis::Answer),
            accepted: Cell::new(false),
            headers_from: Cell::new(ptr::null()),
            max_size: Cell::new(0),
            identity_visible: Cell::new(false),
            claims: OnceCell::new(),
            claims_read: Cell::new(false),
            cache: OnceCell::new(),
            fetched: Cell::new(false),
            sealed: Cell::new(false),
            wait: WaitTimer {
                // SAFETY: an all-zero event is nginx's idle state (ngx_pcalloc'd events).
                event: UnsafeCell::new(unsafe { core::mem::zeroed() }),
                since_ms: Cell::new(0),
                delay_ms: Cell::new(0),
            },
        }
    }

    /// The identity body, when one was accepted, without the line ending it may close
    /// with (`header::trim_identity`). The bytes stay put for the rest of the request: the
    /// answer is not replaced once it is applied.
    pub fn identity(&self) -> Option<(*const u8, usize)> {
        if !self.identity_visible.get() {
            return None;
        }
        let answer = self.answer.try_borrow()?;
        let identity = crate::header::trim_identity(&answer.body);
        Some((identity.as_ptr(), identity.len()))
    }

    /// The kept answer header a `$identity_answer_header_NAME` names (`name`: NAME), when
    /// an identity was accepted; in place, like `identity`.
    pub fn answer_header(&self, name: &[u8]) -> Option<(*const u8, usize)> {
        if !self.identity_visible.get() {
            return None;
        }
        let answer = self.answer.try_borrow()?;
        let value = identity_core::answer_headers::value(&answer.answer_headers, name)?;
        Some((value.as_ptr(), value.len()))
    }

    /// Claim `name` of the identity body, parsing it once (not at all for a cache
    /// entry that recorded its claims: `set_cached`).
    pub fn claim(&self, name: &str) -> Result<Option<ClaimText>, ClaimsError> {
        if !self.identity_visible.get() {
            return Ok(None);
        }
        let Some(answer) = self.answer.try_borrow() else {
            return Ok(None);
        };
        self.claims_read.set(true);
        match self.claims.get_or_init(|| Claims::parse(&answer.body)) {
            Ok(claims) => Ok(claims.text(&answer.body, name).map(|text| match text {
                Cow::Borrowed(t) => ClaimText::InBody(t.as_ptr(), t.len()),
                Cow::Owned(t) => ClaimText::Owned(t),
            })),
            Err(e) => Err(*e),
        }
    }

    /// Puts an answer from the cache in place, with the claims its entry recorded, so
    /// that reading a claim parses no JSON (a recorded refusal counts only once a claim
    /// is read: `claims_read`). The claims are only ever read once the
    /// verdict makes the body visible, after which the answer is not replaced, so they
    /// cannot have been taken from an earlier body; and they are set only with the
    /// answer they were made from (not when the write is lost).
    pub fn set_cached(&self, cached: Cached) {
        match self.answer.write() {
            AnswerMut::Held(mut a) => {
                *a = cached.answer;
                if let Some(claims) = cached.claims {
                    let _ = self.claims.set(claims);
                }
            }
            AnswerMut::Lost(_) => {}
        }
    }

    /// Whether a claim was asked for and the body could not give it.
    pub fn claims_failed(&self) -> Option<ClaimsError> {
        match self.claims.get() {
            Some(Err(e)) if self.claims_read.get() => Some(*e),
            _ => None,
        }
    }

    /// Records the verdict's `$identity_status` and the reason that goes with it.
    pub fn decide(&self, status: IdentityStatus) {
        self.status.set(Some(status));
        self.reason.set(Reason::of_status(status, self.cause.get()));
    }

    pub fn answer(&self) -> AnswerRef<'_> {
        self.answer.read()
    }
}

/// The answer a request holds, behind a `RefCell` whose borrows cannot panic: nginx may
/// call this module's variable handlers (and filters reading them) from inside calls
/// the handler makes. A read that finds it being written sees `LOST`, an answer that
/// failed; a write that finds it being read is dropped and marks the answer lost, so
/// every later read sees `LOST` too and the request takes its error path.
#[derive(Default)]
pub struct AnswerCell {
    cell: RefCell<Answer>,
    lost: Cell<bool>,
}

static LOST: Answer = Answer {
    status: 0,
    failure: Some("the identity answer was overwritten while in use (re-entrant call)"),
    body: Vec::new(),
    content_type: Vec::new(),
    relay_headers: Vec::new(),
    cache_control: Vec::new(),
    vary: Vec::new(),
    vary_digest: Vec::new(),
    answer_headers: Vec::new(),
};

pub enum AnswerRef<'a> {
    Held(Ref<'a, Answer>),
    Lost,
}

impl core::ops::Deref for AnswerRef<'_> {
    type Target = Answer;
    fn deref(&self) -> &Answer {
        match self {
            AnswerRef::Held(r) => r,
            AnswerRef::Lost => &LOST,
        }
    }
}

pub enum AnswerMut<'a> {
    Held(RefMut<'a, Answer>),
    /// The write goes here and is dropped.
    Lost(Box<Answer>),
}

impl core::ops::Deref for AnswerMut<'_> {
    type Target = Answer;
    fn deref(&self) -> &Answer {
        match self {
            AnswerMut::Held(r) => r,
            AnswerMut::Lost(a) => a,
        }
    }
}

impl core::ops::DerefMut for AnswerMut<'_> {
    fn deref_mut(&mut self) -> &mut Answer {
        match self {
            AnswerMut::Held(r) => r,
            AnswerMut::Lost(a) => a,
        }
    }
}

impl AnswerCell {
    /// The answer, or `LOST`; never panics.
    pub fn read(&self) -> AnswerRef<'_> {
        match self.cell.try_borrow() {
            Ok(r) if !self.lost.get() => AnswerRef::Held(r),
            _ => AnswerRef::Lost,
        }
    }

    /// The answer to write, or a scratch one whose write is dropped; never panics.
    pub fn write(&self) -> AnswerMut<'_> {
        match self.cell.try_borrow_mut() {
            Ok(r) => AnswerMut::Held(r),
            Err(_) => {
                self.lost.set(true);
                AnswerMut::Lost(Box::default())
            }
        }
    }

    /// For variables: `None` while the answer is being written or once it is lost.
    fn try_borrow(&self) -> Option<Ref<'_, Answer>> {
        self.cell.try_borrow().ok().filter(|_| !self.lost.get())
    }
}

/// The main request's context, if this module made one (the slot may also hold
/// post-read's `STRIPPED_MARK`, which is no context). nginx clears module contexts on an
/// internal redirect (and when a filter finalizes the request); the context is then
/// found again in the request pool's cleanup list, as ngx_http_realip_module does, and
/// put back in its slot.
pub fn request_ctx<'a>(r: &ngx_http_request_t) -> Option<&'a RequestCtx> {
    let main = r.main;
    // SAFETY: r->main is the live main request; its ctx array has a slot per module.
    let slot = unsafe { (*main).ctx.add(module().ctx_index) };
    // SAFETY: as above.
    let mut p = unsafe { *slot } as *const RequestCtx;
    if p as *const u8 == &STRIPPED_MARK {
        return None;
    }
    // SAFETY: main is live; reading its flags.
    let redirected = unsafe { (*main).internal() != 0 || (*main).filter_finalize() != 0 };
    if p.is_null() && redirected {
        // SAFETY: main is live; its pool's cleanup list is a valid singly linked list.
        let mut cln = unsafe { (*(*main).pool).cleanup };
        let ours = drop_request_ctx as unsafe extern "C" fn(*mut c_void);
        // SAFETY: as above; the newest entry comes first, so the newest context of this
        // request is found.
        while let Some(c) = unsafe { cln.as_ref() } {
            if c.handler.map(|h| h as *const ()) == Some(ours as *const ()) {
                p = c.data as *const RequestCtx;
                // SAFETY: the slot is this module's in the live main request's ctx.
                unsafe { *slot = c.data };
                break;
            }
            cln = c.next;
        }
    }
    // SAFETY: besides the mark (returned for above), this module only ever stores a
    // RequestCtx there, and only shares it.
    unsafe { p.as_ref() }
}

/// What the post-read handler leaves in a main request's context slot once it has
/// removed the server's protected names, until `new_request_ctx` puts a context there.
/// nginx clears the slot on internal and named-location redirects (error pages
/// included), the ways into the access phase that skip post-read.
static STRIPPED_MARK: u8 = 0;

/// Records that post-read removed the server's protected names from main request `r`.
pub fn mark_stripped(r: &mut ngx_http_request_t) {
    // SAFETY: r->ctx has a slot per module; this module's is empty before any context.
    unsafe { *r.ctx.add(module().ctx_index) = &STRIPPED_MARK as *const u8 as *mut c_void };
}

/// Whether post-read removed the server's protected names from main request `r` and
/// nothing (an internal redirect) has restarted its phases since.
pub fn stripped_in_post_read(r: &ngx_http_request_t) -> bool {
    // SAFETY: r->ctx has a slot per module.
    let p = unsafe { *r.ctx.add(module().ctx_index) };
    ptr::eq(p as *const u8, &STRIPPED_MARK)
}

/// Makes a new context for the main request `r`, dropped with its pool.
pub fn new_request_ctx<'a>(r: &mut ngx_http_request_t) -> Result<&'a RequestCtx, NoMemory> {
    // SAFETY: r's pool is live; the cleanup entry owns room for one RequestCtx (nginx
    // aligns it to the pointer size, which covers RequestCtx's fields).
    let cln = unsafe { ngx_pool_cleanup_add(r.pool, size_of::<RequestCtx>()) };
    // SAFETY: a non-null result is a fresh cleanup entry.
    let Some(cln) = (unsafe { cln.as_mut() }) else {
        return Err(NoMemory);
    };
    let p = cln.data as *mut RequestCtx;
    // SAFETY: p is room for one RequestCtx; the handler drops it once, with the pool.
    unsafe { ptr::write(p, RequestCtx::new()) };
    cln.handler = Some(drop_request_ctx);
    // SAFETY: r->ctx has a slot per module.
    unsafe { *r.ctx.add(module().ctx_index) = p as *mut c_void };
    // SAFETY: initialised above, lives as long as the request; only ever shared.
    Ok(unsafe { &*p })
}

/// The cleanup handler of a request context; also how `request_ctx` recognises it.
unsafe extern "C" fn drop_request_ctx(data: *mut c_void) {
    // SAFETY: data is the RequestCtx written by new_request_ctx; run once.
    unsafe { ptr::drop_in_place(data as *mut RequestCtx) };
}
