//! The access-phase handler and its per-request state.
//!
//! Control flow follows nginx's `auth_request`: the first visit strips spoofed headers,
//! reads the credential and starts an in-memory subrequest, returning `NGX_AGAIN`; the
//! subrequest's completion wakes the request, and the next visit applies the answer.
//! A cache (a separate issue) slots in where the subrequest is started: it fills the
//! same `Answer` and the rest of the flow is unchanged.

use core::ffi::c_void;
use core::ptr;

use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_create_temp_buf, ngx_event_t, ngx_http_complex_value,
    ngx_http_core_run_phases, ngx_http_discard_request_body, ngx_http_finalize_request,
    ngx_http_output_filter, ngx_http_request_t, ngx_http_run_posted_requests, ngx_http_send_header,
    ngx_int_t, ngx_list_push, ngx_str_t, ngx_table_elt_t, NGX_LOG_ERR,
};
use ngx::ngx_log_error;

use crate::cache::{CacheZone, Lookup};
use crate::cache_entry::{ttl_for, TAG_LEN};
use crate::claims::{Claims, ClaimsError};
use crate::config::IdentityConf;
use crate::decision::{Answer, IdentityStatus, Verdict};
use crate::header::{check_header_value, header_names_match, strip_cookies, UnsafeValue};
use crate::headers_in::{self, Edit, NoMemory};
use crate::module::{allocate_in_pool, module};
use crate::subrequest;

const NGX_OK: ngx_int_t = 0;
const NGX_ERROR: ngx_int_t = -1;
const NGX_AGAIN: ngx_int_t = -2;
const NGX_DONE: ngx_int_t = -4;
const NGX_DECLINED: ngx_int_t = -5;
const HTTP_INTERNAL_SERVER_ERROR: ngx_int_t = 500;

/// Where a request is in the exchange.
pub enum State {
    /// The subrequest is in flight.
    Waiting,
    /// Another request (in any worker) is asking for the same key; a timer looks again.
    WaitingForPeer,
    /// The answer is in; the next visit applies it.
    Answered,
    /// Applied; a later visit of the access phase returns the same result.
    Finished(ngx_int_t),
}

/// Per-request state, kept in the main request's module context.
pub struct RequestCtx {
    pub state: State,
    /// `None` until decided.
    pub status: Option<IdentityStatus>,
    pub answer: Answer,
    /// The identity subrequest, while one runs; its body filter fills `body`.
    pub subrequest: *mut ngx_http_request_t,
    pub body: Vec<u8>,
    pub body_overflow: bool,
    pub max_size: usize,
    /// Whether `$identity` and `$identity_claim_*` may read the answer's body.
    pub identity_visible: bool,
    claims: Option<Result<Claims, ClaimsError>>,
    /// The cache entry this request uses, when `identity_cache` is on.
    cache: Option<CacheUse>,
    /// Whether `answer` came from this request's own subrequest.
    fetched: bool,
    wait: WaitTimer,
}

/// This request's part in a cache zone.
struct CacheUse {
    zone: *const CacheZone,
    tag: [u8; TAG_LEN],
    outcome: IdentityStatus,
    holds_lock: bool,
}

impl CacheUse {
    fn zone(&self) -> &CacheZone {
        // SAFETY: zones live in the configuration, which outlives every request.
        unsafe { &*self.zone }
    }
}

/// The timer a waiting request sleeps on; never a blocking wait.
struct WaitTimer {
    event: ngx_event_t,
    since_ms: u64,
    delay_ms: u64,
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        if self.wait.event.timer_set() != 0 {
            // SAFETY: the event is in the timer tree and is about to be freed.
            unsafe { nginx_sys::ngx_del_timer(&mut self.wait.event) };
        }
        if let Some(cache) = &self.cache {
            if cache.holds_lock {
                // The request ended before its call did: let waiters call themselves.
                cache.zone().release(&cache.tag);
            }
        }
    }
}

impl RequestCtx {
    fn new() -> Self {
        RequestCtx {
            state: State::Waiting,
            status: None,
            answer: Answer::default(),
            subrequest: ptr::null_mut(),
            body: Vec::new(),
            body_overflow: false,
            max_size: 0,
            identity_visible: false,
            claims: None,
            cache: None,
            fetched: false,
            wait: WaitTimer {
                // SAFETY: an all-zero event is nginx's idle state (ngx_pcalloc'd events).
                event: unsafe { core::mem::zeroed() },
                since_ms: 0,
                delay_ms: 0,
            },
        }
    }

    /// The identity body, when one was accepted.
    pub fn identity(&self) -> Option<&[u8]> {
        self.identity_visible.then_some(&self.answer.body[..])
    }

    /// Claim `name` of the identity body, parsing it once.
    pub fn claim(&mut self, name: &str) -> Result<Option<String>, ClaimsError> {
        if !self.identity_visible {
            return Ok(None);
        }
        let body = &self.answer.body;
        match self.claims.get_or_insert_with(|| Claims::parse(body)) {
            Ok(claims) => Ok(claims.get(name)),
            Err(e) => Err(*e),
        }
    }

    /// Whether a claim was asked for and the body could not give it.
    fn claims_failed(&self) -> Option<ClaimsError> {
        match &self.claims {
            Some(Err(e)) => Some(*e),
            _ => None,
        }
    }
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

/// The main request's context, if this module made one.
pub fn request_ctx<'a>(r: &ngx_http_request_t) -> Option<&'a mut RequestCtx> {
    // SAFETY: r->main is the live main request; its ctx array has a slot per module.
    let p = unsafe { *(*r.main).ctx.add(module().ctx_index) } as *mut RequestCtx;
    // SAFETY: this module only ever stores a RequestCtx there.
    unsafe { p.as_mut() }
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
        Ok(rc) => rc,
        Err(e) => {
            ngx_log_error!(NGX_LOG_ERR, r.connection_log(), "identity: {e}");
            HTTP_INTERNAL_SERVER_ERROR
        }
    }
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

fn run(r: &mut ngx_http_request_t, conf: &IdentityConf) -> Result<ngx_int_t, HandlerError> {
    if let Some(ctx) = request_ctx(r) {
        return match ctx.state {
            State::Waiting => Ok(NGX_AGAIN),
            State::Finished(rc) => Ok(rc),
            // A wake-up that is not the timer's (the request's own write event).
            State::WaitingForPeer if ctx.wait.event.timer_set() != 0 => Ok(NGX_AGAIN),
            State::WaitingForPeer => {
                let since = ctx.wait.since_ms;
                consult_cache(r, conf, ctx, Some(since))
            }
            State::Answered => finish(r, conf, ctx),
        };
    }

    // First visit. Spoofed identity headers go before anything else, on every path.
    if !conf.spoofable.is_empty() {
        headers_in::rewrite_request_headers(r, |name, _| {
            if conf.spoofable.iter().any(|s| header_names_match(s, name)) {
                Edit::Drop
            } else {
                Edit::Keep
            }
        })?;
    }
    if conf.enabled().is_none() {
        return Ok(NGX_DECLINED);
    }

    let ctx = allocate_in_pool(r.pool, RequestCtx::new()) as *mut RequestCtx;
    // SAFETY: a non-null result is an initialised RequestCtx living as long as the request.
    let Some(ctx) = (unsafe { ctx.as_mut() }) else {
        return Err(NoMemory.into());
    };
    // SAFETY: r->ctx has a slot per module.
    unsafe { *r.ctx.add(module().ctx_index) = ctx as *mut RequestCtx as *mut c_void };

    let mut key = ngx_str_t::default();
    // SAFETY: conf.key is a compiled complex value (merge guarantees one).
    if unsafe { ngx_http_complex_value(r, conf.key, &mut key) } != NGX_OK {
        return Err(HandlerError::Key);
    }
    if key.len == 0 {
        let verdict = conf.policy().no_credential();
        let rc = apply(r, conf, ctx, verdict)?;
        ctx.state = State::Finished(rc);
        return Ok(rc);
    }

    if let Some(zone) = conf.cache_zone() {
        if let Some(tag) = zone.tag(key.as_bytes()) {
            ctx.cache = Some(CacheUse {
                zone,
                tag,
                outcome: IdentityStatus::Miss,
                holds_lock: false,
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
    ctx: &mut RequestCtx,
) -> Result<ngx_int_t, HandlerError> {
    let Some(uri) = conf.enabled() else {
        return Ok(NGX_DECLINED);
    };
    if subrequest::start(r, uri, ctx, conf.max_size()).is_err() {
        if let Some(cache) = ctx.cache.as_mut().filter(|c| c.holds_lock) {
            cache.holds_lock = false;
            cache.zone().fail(&cache.tag);
        }
        return Err(HandlerError::Subrequest);
    }
    ctx.fetched = true;
    ctx.state = State::Waiting;
    Ok(NGX_AGAIN)
}

/// Looks the key up; `waiting_since_ms` is set when this request waited for another's call.
fn consult_cache(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &mut RequestCtx,
    waiting_since_ms: Option<u64>,
) -> Result<ngx_int_t, HandlerError> {
    let Some(cache) = ctx.cache.as_mut() else {
        return fetch(r, conf, ctx);
    };
    let waited = waiting_since_ms.is_some();
    match cache
        .zone()
        .lookup(&cache.tag, conf.lock_policy(), waiting_since_ms)
    {
        Lookup::Fresh(answer) => {
            cache.outcome = if waited {
                IdentityStatus::Coalesced
            } else {
                IdentityStatus::Hit
            };
            ctx.answer = answer;
            finish(r, conf, ctx)
        }
        Lookup::PeerFailed(stale) => {
            match stale {
                Some(answer) => {
                    cache.outcome = IdentityStatus::Stale;
                    ctx.answer = answer;
                }
                None => {
                    ctx.answer = Answer {
                        failure: Some("the user service call this request waited for failed"),
                        ..Answer::default()
                    };
                }
            }
            finish(r, conf, ctx)
        }
        Lookup::Wait => {
            wait_for_peer(r, ctx);
            Ok(NGX_AGAIN)
        }
        Lookup::Fetch { locked } => {
            cache.holds_lock = locked;
            cache.outcome = IdentityStatus::Miss;
            fetch(r, conf, ctx)
        }
    }
}

fn wait_for_peer(r: &mut ngx_http_request_t, ctx: &mut RequestCtx) {
    let wait = &mut ctx.wait;
    if !matches!(ctx.state, State::WaitingForPeer) {
        // SAFETY: plain read of nginx's cached clock.
        wait.since_ms = unsafe { ngx::ffi::ngx_current_msec } as u64;
        wait.delay_ms = 5;
        wait.event.handler = Some(wake_waiter);
        wait.event.data = r as *mut ngx_http_request_t as *mut c_void;
        // SAFETY: a live request's connection has a log.
        wait.event.log = unsafe { (*r.connection).log };
    } else {
        wait.delay_ms = (wait.delay_ms * 2).min(40);
    }
    ctx.state = State::WaitingForPeer;
    // SAFETY: the event lives in the request's context until the request ends, and
    // RequestCtx's Drop removes it from the timer tree.
    unsafe { nginx_sys::ngx_add_timer(&mut wait.event, wait.delay_ms as _) };
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
    ctx: &mut RequestCtx,
) -> Result<ngx_int_t, HandlerError> {
    let policy = conf.policy();
    let usable =
        ctx.answer.failure.is_none() && policy.answer(ctx.answer.status, false) != policy.error();
    if ctx.fetched {
        if let Some(reason) = ctx.answer.failure {
            ngx_log_error!(NGX_LOG_ERR, r.connection_log(), "identity: {reason}");
        } else if !usable {
            ngx_log_error!(
                NGX_LOG_ERR,
                r.connection_log(),
                "identity: the user service answered {}",
                ctx.answer.status
            );
        }
        if let Some(cache) = ctx.cache.as_mut() {
            let held = core::mem::replace(&mut cache.holds_lock, false);
            if usable {
                let ttl = ttl_for(
                    conf.cache_valid(),
                    ctx.answer.status,
                    &ctx.answer.cache_control,
                );
                if held || ttl.is_some() {
                    cache
                        .zone()
                        .store(&cache.tag, &ctx.answer, ttl, conf.cache_use_stale());
                }
            } else if let Some(stale) = if held {
                cache.zone().fail(&cache.tag)
            } else {
                None
            } {
                cache.outcome = IdentityStatus::Stale;
                ctx.answer = stale;
            }
        }
    }
    let verdict = policy.answer(ctx.answer.status, ctx.answer.failure.is_some());
    let rc = apply(r, conf, ctx, verdict)?;
    ctx.state = State::Finished(rc);
    Ok(rc)
}

/// Carries out a verdict; returns what the access handler returns.
fn apply(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &mut RequestCtx,
    verdict: Verdict,
) -> Result<ngx_int_t, HandlerError> {
    match verdict {
        Verdict::Allow => match identity_headers(r, conf, ctx) {
            Ok(headers) => {
                for (h, value) in headers {
                    headers_in::add_request_header(r, &h.name, &h.lowcase_name, &value)?;
                }
                ctx.status = Some(ctx.cache.as_ref().map_or(IdentityStatus::Ok, |c| c.outcome));
                strip_session_cookie(r, conf)?;
                Ok(NGX_OK)
            }
            Err(reason) => {
                ngx_log_error!(NGX_LOG_ERR, r.connection_log(), "identity: {reason}");
                ctx.identity_visible = false;
                apply(r, conf, ctx, conf.policy().error())
            }
        },
        Verdict::PassWithout(status) => {
            ctx.status = Some(status);
            strip_session_cookie(r, conf)?;
            Ok(NGX_OK)
        }
        Verdict::Respond(code, status) => {
            ctx.status = Some(status);
            Ok(code as ngx_int_t)
        }
        Verdict::Relay(code) => {
            ctx.status = Some(IdentityStatus::Denied);
            relay(r, ctx, code)
        }
    }
}

/// Evaluates every `identity_header` value; all or none are set.
fn identity_headers<'c>(
    r: &mut ngx_http_request_t,
    conf: &'c IdentityConf,
    ctx: &mut RequestCtx,
) -> Result<Vec<(&'c crate::config::IdentityHeader, Vec<u8>)>, String> {
    ctx.identity_visible = true;
    let mut out = Vec::new();
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
        let value = value.as_bytes();
        if value.is_empty() {
            continue;
        }
        if let Err(why) = check_header_value(value) {
            return Err(unsafe_value_message(&h.name, why));
        }
        out.push((h, value.to_vec()));
    }
    Ok(out)
}

fn unsafe_value_message(name: &[u8], why: UnsafeValue) -> String {
    format!(
        "identity_header \"{}\" value {why}, so it is not sent",
        String::from_utf8_lossy(name)
    )
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
fn relay(
    r: &mut ngx_http_request_t,
    ctx: &RequestCtx,
    code: u16,
) -> Result<ngx_int_t, HandlerError> {
    for (name, value) in &ctx.answer.relay_headers {
        add_response_header(r, name, value)?;
    }
    if ctx.answer.body.is_empty() {
        return Ok(code as ngx_int_t);
    }
    // SAFETY: r is the live main request; discarding its body keeps keepalive working.
    if unsafe { ngx_http_discard_request_body(r) } != NGX_OK {
        return Ok(HTTP_INTERNAL_SERVER_ERROR);
    }
    r.headers_out.status = usize::from(code);
    r.headers_out.content_length_n = ctx.answer.body.len() as i64;
    if !ctx.answer.content_type.is_empty() {
        let ct = copy_str(r, &ctx.answer.content_type)?;
        r.headers_out.content_type = ct;
        r.headers_out.content_type_len = ct.len;
    }
    // SAFETY: r is the live main request; headers are complete.
    let rc = unsafe { ngx_http_send_header(r) };
    let rc = if rc == NGX_ERROR || rc > NGX_OK || r.header_only() != 0 {
        rc
    } else {
        // SAFETY: the request pool outlives the response.
        let b: *mut ngx_buf_t = unsafe { ngx_create_temp_buf(r.pool, ctx.answer.body.len()) };
        if b.is_null() {
            return Err(NoMemory.into());
        }
        // SAFETY: b has room for the body; it is the only and last buffer.
        unsafe {
            ptr::copy_nonoverlapping(ctx.answer.body.as_ptr(), (*b).last, ctx.answer.body.len());
            (*b).last = (*b).last.add(ctx.answer.body.len());
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
    // The response is complete: finalize as a content handler would, and tell the
    // access phase that the request is taken care of.
    // SAFETY: r is the live main request.
    unsafe { ngx_http_finalize_request(r, rc) };
    Ok(NGX_DONE)
}

fn copy_str(r: &ngx_http_request_t, bytes: &[u8]) -> Result<ngx_str_t, NoMemory> {
    // SAFETY: the request pool outlives the response headers.
    let data = unsafe { ngx::ffi::ngx_pnalloc(r.pool, bytes.len().max(1)) } as *mut u8;
    if data.is_null() {
        return Err(NoMemory);
    }
    // SAFETY: data has room for bytes.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len()) };
    Ok(ngx_str_t {
        len: bytes.len(),
        data,
    })
}

fn add_response_header(
    r: &mut ngx_http_request_t,
    name: &[u8],
    value: &[u8],
) -> Result<(), NoMemory> {
    let key = copy_str(r, name)?;
    let value = copy_str(r, value)?;
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
