//! The access-phase handler and its per-request state.
//!
//! Control flow follows nginx's `auth_request`: the first visit strips spoofed headers,
//! reads the credential and consults the cache or starts an in-memory subrequest,
//! returning `NGX_AGAIN`; the subrequest's completion (or a waiter's timer) wakes the
//! request, and the next visit applies the answer. Cache and subrequest fill the same
//! `Answer`, and one policy (`decision`) turns it into a verdict.
//!
//! The context is only ever reached through shared references, with cells for what
//! changes: nginx calls this module's variable handlers (and header filters that read
//! them) from inside the calls the handler makes, so no `&mut` may be live then.

use core::cell::{Cell, OnceCell, Ref, RefCell, RefMut, UnsafeCell};
use core::ffi::c_void;
use core::ptr;

use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_create_temp_buf, ngx_event_t, ngx_http_complex_value,
    ngx_http_core_run_phases, ngx_http_discard_request_body, ngx_http_finalize_request,
    ngx_http_output_filter, ngx_http_request_t, ngx_http_run_posted_requests, ngx_http_send_header,
    ngx_int_t, ngx_list_push, ngx_pool_cleanup_add, ngx_str_t, ngx_table_elt_t, NGX_LOG_ERR,
};
use ngx::{ngx_log_debug, ngx_log_error};

use crate::cache::{CacheZone, Lookup};
use crate::cache_entry::{key_input, parse_vary, ttl_for, vary_input, Vary, TAG_LEN};
use crate::claims::{Claims, ClaimsError};
use crate::config::{IdentityConf, IdentityHeader, SealedCookie};
use crate::decision::{Answer, IdentityStatus, Verdict};
use crate::header::{check_header_value, cookie_value, header_names_match, strip_cookies};
use crate::headers_in::{self, Edit, NoMemory};
use crate::module::{main_conf, module, srv_conf};
use crate::sealed::{self, OpenError, Validity};
use crate::subrequest;

use crate::ngx_codes::{NGX_AGAIN, NGX_DECLINED, NGX_DONE, NGX_ERROR, NGX_OK};

const HTTP_UNAUTHORIZED: ngx_int_t = 401;
const HTTP_INTERNAL_SERVER_ERROR: ngx_int_t = 500;

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
enum Basis {
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
    pub answer: AnswerCell,
    /// The identity subrequest, while one runs; its body filter fills `body`.
    pub subrequest: Cell<*mut ngx_http_request_t>,
    /// A `Cell`, taken and put back: no borrow flag that a re-entrant call could trip.
    pub body: Cell<Vec<u8>>,
    pub body_overflow: Cell<bool>,
    /// Whether the body filter saw the subrequest's last buffer: an answer that ends
    /// without it (cut short, reset, timed out) is not an answer.
    pub body_complete: Cell<bool>,
    /// The location whose question the answer is for.
    asked_by: Cell<*const IdentityConf>,
    /// The location (and `uri_changes` count) of the last verdict, to tell a new
    /// location after an internal redirect or `rewrite ... last` from a revisit.
    concluded_at: Cell<(*const IdentityConf, u32)>,
    basis: Cell<Basis>,
    /// Whether the verdict let an identity through (identity headers set).
    accepted: Cell<bool>,
    /// The location whose `identity_header` lines are in the request, if any.
    headers_from: Cell<*const IdentityConf>,
    pub max_size: Cell<usize>,
    /// Whether `$identity` and `$identity_claim_*` may read the answer's body.
    identity_visible: Cell<bool>,
    claims: OnceCell<Result<Claims, ClaimsError>>,
    /// The cache entry this request uses, when `identity_cache` is on.
    cache: OnceCell<CacheUse>,
    /// Whether the answer came from this request's own subrequest.
    fetched: Cell<bool>,
    /// Whether the answer was opened from a sealed cookie.
    sealed: Cell<bool>,
    wait: WaitTimer,
}

/// This request's part in a cache zone.
struct CacheUse {
    zone: *const CacheZone,
    tag: [u8; TAG_LEN],
    outcome: Cell<IdentityStatus>,
    holds_lock: Cell<bool>,
    /// The number the zone gave this request's call (`CacheZone::begin_call`).
    call: Cell<Option<u64>>,
}

impl CacheUse {
    fn zone(&self) -> &CacheZone {
        // SAFETY: zones live in the configuration, which outlives every request.
        unsafe { &*self.zone }
    }
}

/// The timer a waiting request sleeps on; never a blocking wait.
struct WaitTimer {
    event: UnsafeCell<ngx_event_t>,
    since_ms: Cell<u64>,
    delay_ms: Cell<u64>,
}

impl WaitTimer {
    fn armed(&self) -> bool {
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
            answer: AnswerCell::default(),
            subrequest: Cell::new(ptr::null_mut()),
            body: Cell::new(Vec::new()),
            body_overflow: Cell::new(false),
            body_complete: Cell::new(false),
            asked_by: Cell::new(ptr::null()),
            concluded_at: Cell::new((ptr::null(), 0)),
            basis: Cell::new(Basis::Answer),
            accepted: Cell::new(false),
            headers_from: Cell::new(ptr::null()),
            max_size: Cell::new(0),
            identity_visible: Cell::new(false),
            claims: OnceCell::new(),
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

    /// The identity body, when one was accepted. The bytes stay put for the rest of the
    /// request: the answer is not replaced once it is applied.
    pub fn identity(&self) -> Option<(*const u8, usize)> {
        if !self.identity_visible.get() {
            return None;
        }
        let answer = self.answer.try_borrow()?;
        Some((answer.body.as_ptr(), answer.body.len()))
    }

    /// Claim `name` of the identity body, parsing it once.
    pub fn claim(&self, name: &str) -> Result<Option<String>, ClaimsError> {
        if !self.identity_visible.get() {
            return Ok(None);
        }
        let Some(answer) = self.answer.try_borrow() else {
            return Ok(None);
        };
        match self.claims.get_or_init(|| Claims::parse(&answer.body)) {
            Ok(claims) => Ok(claims.get(&answer.body, name)),
            Err(e) => Err(*e),
        }
    }

    /// Whether a claim was asked for and the body could not give it.
    fn claims_failed(&self) -> Option<ClaimsError> {
        match self.claims.get() {
            Some(Err(e)) => Some(*e),
            _ => None,
        }
    }

    fn answer(&self) -> AnswerRef<'_> {
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

/// What the access handler does once this module's work for the visit is over.
#[derive(Debug, Clone, Copy)]
enum Next {
    /// Return this to the access phase.
    Phase(ngx_int_t),
    /// A response was sent: finalize the request with this and return `NGX_DONE`. Done
    /// last, because finalizing can free the request's pool and this context with it.
    Finalize(ngx_int_t),
}

/// A failure of the handler itself, answered with 500 like nginx's own modules do.
#[derive(Debug, thiserror::Error)]
enum HandlerError {
    #[error(transparent)]
    NoMemory(#[from] NoMemory),
    #[error("the identity_key value could not be evaluated")]
    Key,
    #[error("could not start the identity subrequest")]
    Subrequest,
}

/// The main request's context, if this module made one. nginx clears module contexts
/// on an internal redirect (and when a filter finalizes the request); the context is
/// then found again in the request pool's cleanup list, as ngx_http_realip_module does,
/// and put back in its slot.
pub fn request_ctx<'a>(r: &ngx_http_request_t) -> Option<&'a RequestCtx> {
    let main = r.main;
    // SAFETY: r->main is the live main request; its ctx array has a slot per module.
    let slot = unsafe { (*main).ctx.add(module().ctx_index) };
    // SAFETY: as above.
    let mut p = unsafe { *slot } as *const RequestCtx;
    // SAFETY: main is live; reading its flags.
    let redirected = unsafe { (*main).internal() != 0 || (*main).filter_finalize() != 0 };
    if p.is_null() && redirected {
        // SAFETY: the pool's cleanup list is a valid singly linked list; the newest
        // entry comes first, so the newest context of this request is found.
        unsafe {
            let mut cln = (*(*main).pool).cleanup;
            while let Some(c) = cln.as_ref() {
                let ours = drop_request_ctx as unsafe extern "C" fn(*mut c_void);
                if c.handler.map(|h| h as *const ()) == Some(ours as *const ()) {
                    p = c.data as *const RequestCtx;
                    *slot = c.data;
                    break;
                }
                cln = c.next;
            }
        }
    }
    // SAFETY: this module only ever stores a RequestCtx there, and only shares it.
    unsafe { p.as_ref() }
}

/// Makes a new context for the main request `r`, dropped with its pool.
fn new_request_ctx<'a>(r: &mut ngx_http_request_t) -> Result<&'a RequestCtx, NoMemory> {
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

/// This module's configuration for the location `r` is in.
pub fn location_conf<'a>(r: &ngx_http_request_t) -> &'a IdentityConf {
    // SAFETY: every location has this module's merged conf at its ctx index.
    unsafe { &*(*r.loc_conf.add(module().ctx_index) as *const IdentityConf) }
}

pub extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls phase handlers with a live request.
    let r = unsafe { &mut *r };
    if !ptr::eq(r, r.main) {
        return NGX_DECLINED;
    }
    let conf = location_conf(r);
    match run(r, conf) {
        Ok(Next::Phase(rc)) => rc,
        Ok(Next::Finalize(rc)) => {
            // SAFETY: r is the live main request; nothing of this module's is used after.
            unsafe { ngx_http_finalize_request(r, rc) };
            NGX_DONE
        }
        Err(e) => {
            ngx_log_error!(NGX_LOG_ERR, r.connection_log(), "identity: {e}");
            // The error page's location must not get the session cookie either: if even
            // that fails, close the connection rather than let it through.
            match strip_session_cookie(r, conf) {
                Ok(()) => HTTP_INTERNAL_SERVER_ERROR,
                Err(_) => NGX_ERROR,
            }
        }
    }
}

/// Post-read phase, main requests only, before any location is chosen: removes every
/// header name the module protects anywhere in this server. Subrequests share the main
/// request's header list, so none of them, and no redirect or sibling location, ever
/// sees a client's copy.
pub extern "C" fn post_read_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls phase handlers with a live request.
    let r = unsafe { &mut *r };
    let names = &srv_conf(r).protected;
    if !ptr::eq(r, r.main) || names.is_empty() {
        return NGX_DECLINED;
    }
    match strip_names(r, |name| names.iter().any(|n| header_names_match(n, name))) {
        Ok(()) => NGX_DECLINED,
        Err(e) => {
            ngx_log_error!(NGX_LOG_ERR, r.connection_log(), "identity: {e}");
            HTTP_INTERNAL_SERVER_ERROR
        }
    }
}

/// Precontent phase, which subrequests run (they skip the access phase): a subrequest
/// into a location where the module is active gets no exchange of its own. It is served
/// only when the main request's identity was accepted for the same question, and then
/// carries the main request's identity headers; anything else is refused.
pub extern "C" fn precontent_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls phase handlers with a live request.
    let r = unsafe { &*r };
    if ptr::eq(r, r.main) {
        return NGX_DECLINED;
    }
    let conf = location_conf(r);
    if !conf.active() || subrequest_may_pass(r, conf) {
        return NGX_DECLINED;
    }
    ngx_log_error!(
        NGX_LOG_ERR,
        r.connection_log(),
        "identity: subrequest to a protected location refused: the main request has no identity accepted for the same identity_request"
    );
    HTTP_UNAUTHORIZED
}

fn subrequest_may_pass(r: &ngx_http_request_t, conf: &IdentityConf) -> bool {
    let Some(ctx) = request_ctx(r) else {
        return false;
    };
    if ptr::eq(ctx.subrequest.get(), r) {
        // The module's own identity subrequest.
        return true;
    }
    // SAFETY: asked_by is null or a location conf, which outlives every request.
    let asked_by = unsafe { ctx.asked_by.get().as_ref() };
    matches!(ctx.state.get(), State::Finished(_))
        && ctx.accepted.get()
        && asked_by.is_some_and(|q| q.same_question(conf))
}

/// Removes from the request's headers every header whose name `protected` matches.
fn strip_names(
    r: &mut ngx_http_request_t,
    protected: impl Fn(&[u8]) -> bool,
) -> Result<(), NoMemory> {
    headers_in::rewrite_request_headers(r, |name, _| {
        if protected(name) {
            Edit::Drop
        } else {
            Edit::Keep
        }
    })?;
    Ok(())
}

trait ConnectionLog {
    fn connection_log(&self) -> *mut ngx::ffi::ngx_log_t;
}

impl ConnectionLog for ngx_http_request_t {
    fn connection_log(&self) -> *mut ngx::ffi::ngx_log_t {
        // SAFETY: a live request always has a connection with a log.
        unsafe { (*self.connection).log }
    }
}

fn run(r: &mut ngx_http_request_t, conf: &IdentityConf) -> Result<Next, HandlerError> {
    if let Some(ctx) = request_ctx(r) {
        let here = (conf as *const IdentityConf, r.uri_changes());
        return match ctx.state.get() {
            // Another location, after an internal redirect or a `rewrite ... last`.
            State::Finished(_) if ctx.concluded_at.get() != here => revisit(r, conf, ctx),
            State::Start | State::Waiting => Ok(Next::Phase(NGX_AGAIN)),
            State::Finished(rc) => Ok(Next::Phase(rc)),
            // A wake-up that is not the timer's (the request's own write event).
            State::WaitingForPeer if ctx.wait.armed() => Ok(Next::Phase(NGX_AGAIN)),
            State::WaitingForPeer => {
                let since = ctx.wait.since_ms.get();
                consult_cache(r, conf, ctx, Some(since))
            }
            State::Answered => finish(r, conf, ctx),
        };
    }

    // First visit. Spoofed identity headers go before anything else, on every path.
    // Post-read removed the server's protected names already, but a request nginx
    // refused while reading its headers reaches an `error_page` location without
    // post-read, so the server's names go here too.
    let server_names = &srv_conf(r).protected;
    if !conf.spoofable.is_empty() || !server_names.is_empty() {
        strip_names(r, |name| {
            conf.spoofable
                .iter()
                .chain(server_names)
                .any(|s| header_names_match(s, name))
        })?;
    }
    if !conf.active() {
        return Ok(Next::Phase(NGX_DECLINED));
    }
    exchange(r, conf)
}

/// A location reached after this request's verdict was given in another: client copies
/// of protected names went in post-read, so the protected names still present are the
/// module's own headers for the previous location.
fn revisit(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &RequestCtx,
) -> Result<Next, HandlerError> {
    let protected = |name: &[u8]| conf.spoofable.iter().any(|s| header_names_match(s, name));
    if !conf.active() {
        // As on a first visit: this location's names go, the rest stays.
        strip_names(r, protected)?;
        ctx.concluded_at.set((conf, r.uri_changes()));
        return Ok(Next::Phase(NGX_DECLINED));
    }
    // SAFETY: null or a location conf, which outlives every request.
    let previous = unsafe { ctx.headers_from.get().as_ref() };
    strip_names(r, |name| {
        protected(name)
            || previous.is_some_and(|p| {
                p.identity_headers()
                    .iter()
                    .any(|h| header_names_match(&h.name, name))
            })
    })?;
    ctx.headers_from.set(ptr::null());
    ctx.accepted.set(false);
    // SAFETY: as above.
    let asked_by = unsafe { ctx.asked_by.get().as_ref() };
    if !asked_by.is_some_and(|q| q.same_question(conf)) {
        // A different question gets its own exchange, with what the request carries now.
        return exchange(r, conf);
    }
    // The same question: the answer in hand, under this location's policy and headers.
    let verdict = match ctx.basis.get() {
        Basis::NoCredential => conf.policy().no_credential(),
        Basis::Answer => {
            let a = ctx.answer();
            conf.policy().answer(a.status, a.failure.is_some())
        }
    };
    conclude(r, conf, ctx, verdict)
}

/// Starts this request's exchange for `conf`'s question, with a context of its own.
fn exchange(r: &mut ngx_http_request_t, conf: &IdentityConf) -> Result<Next, HandlerError> {
    let ctx = new_request_ctx(r)?;
    ctx.asked_by.set(conf);

    // A credential cookie sent more than once (cookie tossing) is ambiguous: the key reads
    // one copy, the user service may authenticate another. Refused with 400, no call made.
    let sealed_name = conf.sealed_cookie().map(|s| s.name.as_slice());
    let keyed = conf
        .enabled()
        .map_or(&[][..], |_| &conf.session_cookies[..]);
    let credentials = sealed_name
        .into_iter()
        .chain(keyed.iter().map(Vec::as_slice));
    if let Some(name) = headers_in::repeated_cookie(r, credentials) {
        ngx_log_error!(
            ngx::ffi::NGX_LOG_INFO,
            r.connection_log(),
            "identity: client sent the cookie \"{}\" more than once",
            String::from_utf8_lossy(name)
        );
        return conclude(r, conf, ctx, Verdict::Respond(400, IdentityStatus::Denied));
    }
    // The same for a header the key reads (`$http_NAME`) sent twice.
    let key_headers = conf.enabled().map_or(&[][..], |_| &conf.key_headers[..]);
    if let Some(var) = headers_in::repeated_header(r, key_headers.iter().map(Vec::as_slice)) {
        ngx_log_error!(
            ngx::ffi::NGX_LOG_INFO,
            r.connection_log(),
            "identity: client sent the header read by \"$http_{}\" more than once",
            String::from_utf8_lossy(var)
        );
        return conclude(r, conf, ctx, Verdict::Respond(400, IdentityStatus::Denied));
    }

    if let Some(sealed) = conf.sealed_cookie() {
        match open_sealed(r, sealed) {
            Ok((identity, claims)) => {
                *ctx.answer.write() = Answer {
                    status: 200,
                    body: identity,
                    ..Answer::default()
                };
                // The spans point into the same bytes, now the answer's body.
                let _ = ctx.claims.set(Ok(claims));
                ctx.sealed.set(true);
                return finish(r, conf, ctx);
            }
            Err(reason) => {
                ngx_log_debug!(
                    r.connection_log(),
                    "identity: sealed cookie not used: {reason}"
                );
                if conf.enabled().is_none() {
                    ctx.basis.set(Basis::NoCredential);
                    return conclude(r, conf, ctx, conf.policy().no_credential());
                }
            }
        }
    }

    let mut key = ngx_str_t::default();
    // SAFETY: conf.key is a compiled complex value (merge guarantees one).
    if unsafe { ngx_http_complex_value(r, conf.key, &mut key) } != NGX_OK {
        return Err(HandlerError::Key);
    }
    if key.len == 0 {
        ctx.basis.set(Basis::NoCredential);
        return conclude(r, conf, ctx, conf.policy().no_credential());
    }

    if let Some(zone) = conf.cache_zone() {
        // The key is the question (this server's identity_request URI) and the credential.
        if let Some(tag) = zone.tag(&key_input(&conf.question, key.as_bytes())) {
            let _ = ctx.cache.set(CacheUse {
                zone,
                tag,
                outcome: Cell::new(IdentityStatus::Miss),
                holds_lock: Cell::new(false),
                call: Cell::new(None),
            });
            return consult_cache(r, conf, ctx, None);
        }
    }
    fetch(r, conf, ctx)
}

/// Starts the subrequest; the answer arrives in `ctx.answer`.
fn fetch(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &RequestCtx,
) -> Result<Next, HandlerError> {
    let Some(uri) = conf.enabled() else {
        return Ok(Next::Phase(NGX_DECLINED));
    };
    if let Some(cache) = ctx.cache.get() {
        // Numbered before the call: a logout (purge) or a newer call's answer from now
        // on keeps this call's answer out.
        cache.call.set(cache.zone().begin_call());
    }
    if subrequest::start(r, uri, ctx, conf.max_size()).is_err() {
        if let Some(cache) = ctx.cache.get().filter(|c| c.holds_lock.get()) {
            cache.holds_lock.set(false);
            cache.zone().fail(&cache.tag);
        }
        return Err(HandlerError::Subrequest);
    }
    ctx.fetched.set(true);
    ctx.state.set(State::Waiting);
    Ok(Next::Phase(NGX_AGAIN))
}

/// Looks the key up; `waiting_since_ms` is set when this request waited for another's call.
fn consult_cache(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &RequestCtx,
    waiting_since_ms: Option<u64>,
) -> Result<Next, HandlerError> {
    let Some(cache) = ctx.cache.get() else {
        return fetch(r, conf, ctx);
    };
    match cache
        .zone()
        .lookup(&cache.tag, conf.lock_policy(), waiting_since_ms)
    {
        Lookup::Fresh(answer) if !vary_matches(r, cache.zone(), &answer) => {
            // The same question and credential, but other values of the headers the
            // user service said its answer depends on: a miss, whose answer replaces it.
            cache.outcome.set(IdentityStatus::Miss);
            fetch(r, conf, ctx)
        }
        Lookup::Fresh(answer) => {
            cache.outcome.set(if waiting_since_ms.is_some() {
                IdentityStatus::Coalesced
            } else {
                IdentityStatus::Hit
            });
            *ctx.answer.write() = answer;
            finish(r, conf, ctx)
        }
        Lookup::PeerFailed(stale) => {
            *ctx.answer.write() = match stale {
                Some(answer) if vary_matches(r, cache.zone(), &answer) => {
                    cache.outcome.set(IdentityStatus::Stale);
                    answer
                }
                _ => Answer {
                    failure: Some("the user service call this request waited for failed"),
                    ..Answer::default()
                },
            };
            finish(r, conf, ctx)
        }
        Lookup::Wait => {
            wait_for_peer(r, ctx);
            Ok(Next::Phase(NGX_AGAIN))
        }
        Lookup::Fetch { locked } => {
            cache.holds_lock.set(locked);
            cache.outcome.set(IdentityStatus::Miss);
            fetch(r, conf, ctx)
        }
    }
}

fn wait_for_peer(r: &mut ngx_http_request_t, ctx: &RequestCtx) {
    let wait = &ctx.wait;
    let ev = wait.event.get();
    if ctx.state.get() != State::WaitingForPeer {
        // SAFETY: plain read of nginx's cached clock.
        wait.since_ms
            .set(unsafe { ngx::ffi::ngx_current_msec } as u64);
        wait.delay_ms.set(5);
        // SAFETY: the event is idle; nginx reads these fields when the timer fires.
        unsafe {
            (*ev).handler = Some(wake_waiter);
            (*ev).data = r as *mut ngx_http_request_t as *mut c_void;
            (*ev).log = (*r.connection).log;
        }
    } else {
        wait.delay_ms.set((wait.delay_ms.get() * 2).min(40));
    }
    ctx.state.set(State::WaitingForPeer);
    // SAFETY: the event lives in the request's context until the request ends, and
    // RequestCtx's Drop removes it from the timer tree.
    unsafe { nginx_sys::ngx_add_timer(ev, wait.delay_ms.get() as _) };
}

unsafe extern "C" fn wake_waiter(ev: *mut ngx_event_t) {
    // SAFETY: the event's data is the waiting main request, alive while its timer is.
    let r = unsafe { (*ev).data as *mut ngx_http_request_t };
    // SAFETY: as above.
    let c = unsafe { (*r).connection };
    // SAFETY: resuming the phase engine where the access handler returned NGX_AGAIN, as
    // nginx's limit_req does after its delay.
    unsafe {
        ngx_http_core_run_phases(r);
        ngx_http_run_posted_requests(c);
    }
}

/// Applies an answer, keeping it in the cache first when it came from the user service.
fn finish(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &RequestCtx,
) -> Result<Next, HandlerError> {
    let policy = conf.policy();
    if ctx.fetched.get() {
        let (failure, status) = {
            let a = ctx.answer();
            (a.failure, a.status)
        };
        let usable = failure.is_none() && policy.answer(status, false) != policy.error();
        if let Some(reason) = failure {
            ngx_log_error!(NGX_LOG_ERR, r.connection_log(), "identity: {reason}");
        } else if !usable {
            ngx_log_error!(
                NGX_LOG_ERR,
                r.connection_log(),
                "identity: the user service answered {status}"
            );
        }
        if let Some(cache) = ctx.cache.get() {
            let held = cache.holds_lock.replace(false);
            if usable {
                // An answer that varies is kept with the digest of the headers it varies on.
                let vary = parse_vary(&ctx.answer().vary);
                let digest = match vary {
                    Vary::Headers(names) => vary_digest(r, cache.zone(), &names),
                    Vary::Uncacheable => None,
                };
                // A busy cell marks the answer lost: it is then neither kept nor used.
                let keep = digest.is_some_and(|d| match ctx.answer.write() {
                    AnswerMut::Held(mut a) => {
                        a.vary_digest = d;
                        true
                    }
                    AnswerMut::Lost(_) => false,
                });
                let answer = ctx.answer();
                match ttl_for(conf.cache_valid(), answer.status, &answer.cache_control)
                    .filter(|_| keep)
                    .zip(cache.call.get())
                {
                    Some((ttl, call)) => {
                        cache.zone().store(
                            &cache.tag,
                            &answer,
                            Some(ttl),
                            conf.cache_use_stale(),
                            call,
                        );
                    }
                    // A definitive answer that may not be kept is still the user
                    // service's last word: the older entry must never be served stale
                    // after it, nor stored by an older call ending later (a revoked
                    // session). Settling also releases the key's lock; its waiters then
                    // call for themselves.
                    None => match cache.call.get() {
                        Some(call) => cache.zone().settle(&cache.tag, call),
                        None => {
                            cache.zone().remove(&cache.tag);
                        }
                    },
                }
            } else if held {
                let stale = cache.zone().fail(&cache.tag);
                if let Some(stale) = stale.filter(|a| vary_matches(r, cache.zone(), a)) {
                    cache.outcome.set(IdentityStatus::Stale);
                    *ctx.answer.write() = stale;
                }
            }
        }
    }
    let verdict = {
        let a = ctx.answer();
        policy.answer(a.status, a.failure.is_some())
    };
    conclude(r, conf, ctx, verdict)
}

/// The zone's keyed digest of this request's values of the `Vary` headers `names`, as
/// the identity subrequest carries them; empty when there are no names, `None` when it
/// cannot be computed.
fn vary_digest(r: &ngx_http_request_t, zone: &CacheZone, names: &[Vec<u8>]) -> Option<Vec<u8>> {
    if names.is_empty() {
        return Some(Vec::new());
    }
    let mut headers = Vec::new();
    // SAFETY: headers_in.headers is the request's live header list; the subrequest
    // copies it, so these are the values the user service was (or would be) sent.
    unsafe {
        headers_in::visit(&r.headers_in.headers, |name, value| {
            if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                headers.push((name.to_vec(), value.to_vec()));
            }
        })
    };
    zone.tag(&vary_input(names, &headers)).map(|d| d.to_vec())
}

/// Whether a cached answer may serve this request: it has no `Vary`, or this request's
/// values of those headers are the ones it answered.
fn vary_matches(r: &ngx_http_request_t, zone: &CacheZone, answer: &Answer) -> bool {
    match parse_vary(&answer.vary) {
        Vary::Headers(names) if names.is_empty() => true,
        Vary::Headers(names) => {
            vary_digest(r, zone, &names).is_some_and(|d| d == answer.vary_digest)
        }
        Vary::Uncacheable => false,
    }
}

/// Carries out a verdict and remembers the result for later visits.
fn conclude(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &RequestCtx,
    verdict: Verdict,
) -> Result<Next, HandlerError> {
    let next = apply(r, conf, ctx, verdict)?;
    ctx.concluded_at.set((conf, r.uri_changes()));
    ctx.state.set(State::Finished(match next {
        Next::Phase(rc) => rc,
        Next::Finalize(_) => NGX_DONE,
    }));
    Ok(next)
}

/// Carries out a verdict; returns what the access handler returns.
fn apply(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &RequestCtx,
    verdict: Verdict,
) -> Result<Next, HandlerError> {
    // On every verdict: a location reached later through error_page must not get the
    // session cookie either.
    strip_session_cookie(r, conf)?;
    match verdict {
        Verdict::Allow => match identity_headers(r, conf, ctx) {
            Ok(headers) => {
                for (h, value) in headers {
                    headers_in::add_request_header(r, h.name(), h.lowcase_name(), value)?;
                }
                ctx.headers_from.set(conf);
                ctx.accepted.set(true);
                let outcome = if ctx.sealed.get() {
                    IdentityStatus::Sealed
                } else {
                    ctx.cache
                        .get()
                        .map_or(IdentityStatus::Ok, |c| c.outcome.get())
                };
                ctx.status.set(Some(outcome));
                Ok(Next::Phase(NGX_OK))
            }
            Err(reason) => {
                ngx_log_error!(NGX_LOG_ERR, r.connection_log(), "identity: {reason}");
                ctx.identity_visible.set(false);
                apply(r, conf, ctx, conf.policy().error())
            }
        },
        Verdict::PassWithout(status) => {
            ctx.status.set(Some(status));
            Ok(Next::Phase(NGX_OK))
        }
        Verdict::Respond(code, status) => {
            ctx.status.set(Some(status));
            Ok(Next::Phase(code as ngx_int_t))
        }
        Verdict::Relay(code) => {
            ctx.status.set(Some(IdentityStatus::Denied));
            let answer = ctx.answer();
            relay(r, &answer, code)
        }
    }
}

/// Whether `satisfy any` applies to the location `r` is in.
fn satisfy_any(r: &ngx_http_request_t) -> bool {
    // SAFETY: every location has the core module's loc conf at its index; it lives in
    // the configuration, which outlives the request.
    unsafe {
        let clcf = *r.loc_conf.add(ngx::ffi::ngx_http_core_module.ctx_index)
            as *const ngx::ffi::ngx_http_core_loc_conf_t;
        clcf.as_ref()
            .is_some_and(|c| c.satisfy == ngx::ffi::NGX_HTTP_SATISFY_ANY as usize)
    }
}

/// Evaluates every `identity_header` value; all or none are set. A claim variable that
/// finds no JSON object records it in the context, which fails the whole set.
fn identity_headers<'c>(
    r: &mut ngx_http_request_t,
    conf: &'c IdentityConf,
    ctx: &RequestCtx,
) -> Result<Vec<(&'c IdentityHeader, ngx_str_t)>, String> {
    ctx.identity_visible.set(true);
    let mut out = Vec::with_capacity(conf.identity_headers().len());
    for h in conf.identity_headers() {
        let mut value = ngx_str_t::default();
        // SAFETY: h.value was compiled at configuration time for this module.
        if unsafe { ngx_http_complex_value(r, h.value, &mut value) } != NGX_OK {
            return Err(format!(
                "the value of identity_header \"{}\" could not be evaluated",
                String::from_utf8_lossy(&h.name)
            ));
        }
        if let Some(e) = ctx.claims_failed() {
            return Err(format!(
                "identity_header \"{}\" uses $identity_claim_*, but {e}",
                String::from_utf8_lossy(&h.name)
            ));
        }
        if value.len == 0 {
            continue;
        }
        if let Err(why) = check_header_value(value.as_bytes()) {
            return Err(format!(
                "identity_header \"{}\" value {why}, so it is not sent",
                String::from_utf8_lossy(&h.name)
            ));
        }
        out.push((h, value));
    }
    Ok(out)
}

/// Opens the request's sealed cookie. Every failure is one outcome for the client; the
/// reason goes to the debug log only.
fn open_sealed(
    r: &ngx_http_request_t,
    cookie: &SealedCookie,
) -> Result<(Vec<u8>, Claims), OpenError> {
    let Some(ring) = main_conf(r).keyring.as_ref() else {
        return Err(OpenError::UnknownKey);
    };
    let mut value = None;
    // SAFETY: headers_in.headers is the request's live header list.
    unsafe {
        headers_in::visit(&r.headers_in.headers, |name, line| {
            if value.is_none() && name.eq_ignore_ascii_case(b"cookie") {
                value = cookie_value(line, &cookie.name).map(<[u8]>::to_vec);
            }
        })
    };
    let value = value.ok_or(OpenError::Truncated)?;
    let validity = Validity {
        now: ngx::ffi::ngx_time(),
        max_age: cookie.max_age,
    };
    sealed::open_with_claims(ring, &cookie.name, &value, validity)
}

fn strip_session_cookie(r: &mut ngx_http_request_t, conf: &IdentityConf) -> Result<(), NoMemory> {
    if conf.strip_cookie != Some(true) {
        return Ok(());
    }
    headers_in::rewrite_request_headers(r, |name, value| {
        if !name.eq_ignore_ascii_case(b"cookie") {
            return Edit::Keep;
        }
        match strip_cookies(value, &conf.session_cookies) {
            None => Edit::Keep,
            Some(rest) if rest.is_empty() => Edit::Drop,
            Some(rest) => Edit::Replace(rest),
        }
    })?;
    Ok(())
}

/// Answers the client with the user service's refusal: its status, the headers the
/// decision module allows, and its body. An empty body leaves the page to nginx, so
/// `error_page` applies as it does for `auth_request`.
fn relay(r: &mut ngx_http_request_t, answer: &Answer, code: u16) -> Result<Next, HandlerError> {
    // Under `satisfy any`, a 401 or 403 leaves the next access handler (allow,
    // auth_basic) free to grant, as nginx's own modules do; nginx answers with its own
    // page if none does. Relaying would refuse a client another rule admits.
    if (code == 401 || code == 403) && satisfy_any(r) {
        return Ok(Next::Phase(code as ngx_int_t));
    }
    for (name, value) in &answer.relay_headers {
        add_response_header(r, name, value)?;
    }
    if answer.body.is_empty() {
        return Ok(Next::Phase(code as ngx_int_t));
    }
    // SAFETY: r is the live main request; discarding its body keeps keepalive working.
    if unsafe { ngx_http_discard_request_body(r) } != NGX_OK {
        return Ok(Next::Phase(HTTP_INTERNAL_SERVER_ERROR));
    }
    r.headers_out.status = usize::from(code);
    r.headers_out.content_length_n = answer.body.len() as i64;
    if !answer.content_type.is_empty() {
        let ct = headers_in::copy_to_pool(r.pool, &answer.content_type)?;
        r.headers_out.content_type = ct;
        r.headers_out.content_type_len = ct.len;
    }
    // SAFETY: r is the live main request; headers are complete.
    let rc = unsafe { ngx_http_send_header(r) };
    let rc = if rc == NGX_ERROR || rc > NGX_OK || r.header_only() != 0 {
        rc
    } else {
        // SAFETY: the request pool outlives the response.
        let b: *mut ngx_buf_t = unsafe { ngx_create_temp_buf(r.pool, answer.body.len()) };
        if b.is_null() {
            return Err(NoMemory.into());
        }
        // SAFETY: b has room for the body; it is the only and last buffer.
        unsafe {
            ptr::copy_nonoverlapping(answer.body.as_ptr(), (*b).last, answer.body.len());
            (*b).last = (*b).last.add(answer.body.len());
            (*b).set_last_buf(1);
            (*b).set_last_in_chain(1);
        }
        let mut out = ngx_chain_t {
            buf: b,
            next: ptr::null_mut(),
        };
        // SAFETY: out is a valid one-link chain for the live request.
        unsafe { ngx_http_output_filter(r, &mut out) }
    };
    // The response is complete: the access handler finalizes it as a content handler
    // would, once nothing here touches the request's memory any more.
    Ok(Next::Finalize(rc))
}

fn add_response_header(
    r: &mut ngx_http_request_t,
    name: &[u8],
    value: &[u8],
) -> Result<(), NoMemory> {
    let key = headers_in::copy_to_pool(r.pool, name)?;
    let value = headers_in::copy_to_pool(r.pool, value)?;
    // SAFETY: headers_out.headers is the request's live list of ngx_table_elt_t.
    let h = unsafe { ngx_list_push(&mut r.headers_out.headers) } as *mut ngx_table_elt_t;
    if h.is_null() {
        return Err(NoMemory);
    }
    // SAFETY: h is a fresh element.
    unsafe {
        ptr::write_bytes(h, 0, 1);
        (*h).hash = 1;
        (*h).key = key;
        (*h).value = value;
    }
    if name.eq_ignore_ascii_case(b"location") {
        // The header filter makes a relative Location absolute, as for any redirect.
        r.headers_out.location = h;
    } else if name.eq_ignore_ascii_case(b"www-authenticate") {
        r.headers_out.www_authenticate = h;
    }
    Ok(())
}
