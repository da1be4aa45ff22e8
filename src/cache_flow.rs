//! The exchange's coordination with the cache: looking a key up, single flight (one
//! request calls, the others wait on a timer and are woken to look again), starting the
//! call, and keeping its answer (or the record of a definitive one) when it arrives.

use core::ffi::c_void;

use ngx::ffi::{
    ngx_event_t, ngx_http_core_run_phases, ngx_http_request_t, ngx_http_run_posted_requests,
    NGX_LOG_ERR,
};
use ngx::ngx_log_error;

use crate::cache::{CacheZone, Lookup};
use crate::cache_entry::{parse_vary, ttl_for, vary_input, Vary};
use crate::cache_policy::{self, Record};
use crate::config::IdentityConf;
use crate::decision::{Answer, IdentityStatus};
use crate::headers_in;
use crate::ngx_codes::{NGX_AGAIN, NGX_DECLINED};
use crate::outcome::{ConnectionLog, HandlerError, Next};
use crate::request_ctx::{AnswerMut, CacheUse, RequestCtx, State};
use crate::subrequest;
use crate::verdict::conclude;

/// Starts the subrequest; the answer arrives in `ctx.answer`.
pub fn fetch(
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
    let passed = crate::client_headers::passed(r, conf);
    if let Err(e) = subrequest::start(r, uri, ctx, conf.max_size(), &passed) {
        if let Some(cache) = ctx.cache.get().filter(|c| c.holds_lock.get()) {
            cache.holds_lock.set(false);
            cache.zone().fail(&cache.tag);
        }
        return Err(e.into());
    }
    ctx.fetched.set(true);
    ctx.state.set(State::Waiting);
    Ok(Next::Phase(NGX_AGAIN))
}

/// Looks the key up; `waiting_since_ms` is set when this request waited for another's call.
pub fn consult_cache(
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
        Lookup::Fresh(cached) if !vary_matches(r, cache.zone(), &cached.answer) => {
            // The same question and credential, but other values of the headers the
            // user service said its answer depends on: a miss, whose answer replaces it.
            cache.outcome.set(IdentityStatus::Miss);
            fetch(r, conf, ctx)
        }
        Lookup::Fresh(cached) => {
            cache.outcome.set(if waiting_since_ms.is_some() {
                IdentityStatus::Coalesced
            } else {
                IdentityStatus::Hit
            });
            ctx.set_cached(cached);
            finish(r, conf, ctx)
        }
        Lookup::PeerFailed(stale) => {
            match stale {
                Some(cached) if vary_matches(r, cache.zone(), &cached.answer) => {
                    cache.outcome.set(IdentityStatus::Stale);
                    ctx.set_cached(cached);
                }
                _ => {
                    *ctx.answer.write() = Answer {
                        failure: Some("the user service call this request waited for failed"),
                        ..Answer::default()
                    }
                }
            }
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
pub fn finish(
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
            let ttl = if usable {
                keepable_for(r, conf, ctx, cache)
            } else {
                None
            };
            match cache_policy::record(usable, ttl, held, cache.call.get()) {
                Record::Store { ttl, call } => {
                    let answer = ctx.answer();
                    let use_stale = conf.cache_use_stale();
                    cache
                        .zone()
                        .store(&cache.tag, &answer, Some(ttl), use_stale, call);
                }
                // A definitive answer that may not be kept is still the user service's
                // last word: the older entry must never be served stale after it, nor
                // stored by an older call ending later (a revoked session). Settling also
                // releases the key's lock; its waiters then call for themselves.
                Record::Settle { call } => cache.zone().settle(&cache.tag, call),
                Record::Remove => {
                    cache.zone().remove(&cache.tag);
                }
                Record::Fail => {
                    let stale = cache.zone().fail(&cache.tag);
                    if let Some(stale) = stale.filter(|c| vary_matches(r, cache.zone(), &c.answer))
                    {
                        cache.outcome.set(IdentityStatus::Stale);
                        ctx.set_cached(stale);
                    }
                }
                Record::Nothing => {}
            }
        }
    }
    let verdict = {
        let a = ctx.answer();
        policy.answer(a.status, a.failure.is_some())
    };
    conclude(r, conf, ctx, verdict)
}

/// How long the request's own answer may be kept (`identity_cache_valid`,
/// `Cache-Control`), with the digest of the headers it varies on recorded in it; `None`
/// when it may not be kept.
fn keepable_for(
    r: &ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &RequestCtx,
    cache: &CacheUse,
) -> Option<u32> {
    let digest = match parse_vary(&ctx.answer().vary) {
        Vary::Headers(names) => vary_digest(r, cache.zone(), &names)?,
        Vary::Uncacheable => return None,
    };
    // A busy cell marks the answer lost: it is then neither kept nor used.
    match ctx.answer.write() {
        AnswerMut::Held(mut a) => a.vary_digest = digest,
        AnswerMut::Lost(_) => return None,
    }
    let answer = ctx.answer();
    ttl_for(conf.cache_valid(), answer.status, &answer.cache_control)
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
/// values of those headers are the ones it answered; and it kept every answer header the
/// configuration reads (`answer_headers::covered`).
fn vary_matches(r: &ngx_http_request_t, zone: &CacheZone, answer: &Answer) -> bool {
    if !crate::answer_headers::covered(r, answer) {
        return false;
    }
    match parse_vary(&answer.vary) {
        Vary::Headers(names) if names.is_empty() => true,
        Vary::Headers(names) => {
            vary_digest(r, zone, &names).is_some_and(|d| d == answer.vary_digest)
        }
        Vary::Uncacheable => false,
    }
}
