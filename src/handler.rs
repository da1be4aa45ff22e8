//! The phase handlers: post-read (spoofed headers out), access (the exchange) and
//! precontent (subrequests into protected locations).
//!
//! Control flow follows nginx's `auth_request`: the first visit strips spoofed headers,
//! reads the credential and consults the cache or starts an in-memory subrequest,
//! returning `NGX_AGAIN`; the subrequest's completion (or a waiter's timer) wakes the
//! request, and the next visit applies the answer. Cache and subrequest fill the same
//! `Answer`, and one policy (`decision`) turns it into a verdict.

use core::cell::Cell;
use core::ptr;

use ngx::ffi::{
    ngx_http_complex_value, ngx_http_finalize_request, ngx_http_request_t, ngx_int_t, ngx_str_t,
    NGX_LOG_ERR,
};
use ngx::http::HTTPStatus;
use ngx::{ngx_log_debug, ngx_log_error};

use crate::cache_flow::{consult_cache, fetch, finish};
use crate::client_headers;
use crate::config::IdentityConf;
use crate::decision::{Answer, IdentityStatus, Reason, Verdict};
use crate::header::header_names_match;
use crate::headers_in::{self, Edit};
use crate::module::{location_conf, srv_conf};
use crate::ngx_codes::{rc, NGX_AGAIN, NGX_DECLINED, NGX_DONE, NGX_ERROR, NGX_OK};
use crate::outcome::{ConnectionLog, HandlerError, Next};
use crate::pool::NoMemory;
use crate::request_ctx::CacheUse;
use crate::request_ctx::{
    mark_stripped, new_request_ctx, request_ctx, stripped_in_post_read, Basis, RequestCtx, State,
};
use crate::require;
use crate::sealed_cookie::open_sealed;
use crate::verdict::{conclude, strip_session_cookie};

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
                Ok(()) => rc(HTTPStatus::INTERNAL_SERVER_ERROR),
                Err(_) => NGX_ERROR,
            }
        }
    }
}

/// Access phase, first of its handlers (before allow/deny, auth_basic and this
/// module's own exchange, which runs last): client copies of the location's protected
/// names go (unless post-read already removed the server's, which include them), and
/// after an internal redirect the previous location's identity headers,
/// whether or not the exchange runs here (under `satisfy any`, an `allow` that admits
/// the client skips it).
pub extern "C" fn access_strip_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls phase handlers with a live request.
    let r = unsafe { &mut *r };
    if !ptr::eq(r, r.main) {
        return NGX_DECLINED;
    }
    let conf = location_conf(r);
    match strip_for_location(r, conf) {
        Ok(()) => NGX_DECLINED,
        Err(e) => {
            ngx_log_error!(NGX_LOG_ERR, r.connection_log(), "identity: {e}");
            match strip_session_cookie(r, conf) {
                Ok(()) => rc(HTTPStatus::INTERNAL_SERVER_ERROR),
                Err(_) => NGX_ERROR,
            }
        }
    }
}

fn strip_for_location(r: &mut ngx_http_request_t, conf: &IdentityConf) -> Result<(), NoMemory> {
    let Some(ctx) = request_ctx(r) else {
        // No exchange yet. Post-read removed the server's protected names already, which
        // include every location's (`protected_names`), unless the request came here by
        // an internal redirect, or another post-read handler ended that phase before
        // this module's: a request nginx refused while reading its headers reaches an
        // `error_page` location without post-read. Then the server's names go here.
        if stripped_in_post_read(r) {
            return Ok(());
        }
        let server_names = &srv_conf(r).protected;
        if !conf.spoofable.is_empty() || !server_names.is_empty() {
            strip_names(r, |name| {
                conf.spoofable
                    .iter()
                    .chain(server_names)
                    .any(|s| header_names_match(s, name))
            })?;
        }
        return Ok(());
    };
    let here = (conf as *const IdentityConf, r.uri_changes());
    if matches!(ctx.state.get(), State::Finished(_)) && ctx.concluded_at.get() != here {
        leave_previous_location(r, conf, ctx)?;
    }
    Ok(())
}

/// A location reached after this request's verdict was given in another: client copies
/// of protected names went in post-read, so the protected names still present are the
/// module's own headers for the previous location. This location's names go; where the
/// module is active, the previous location's identity headers go too, and the exchange
/// handler (`revisit`) decides again.
fn leave_previous_location(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &RequestCtx,
) -> Result<(), NoMemory> {
    let protected = |name: &[u8]| conf.spoofable.iter().any(|s| header_names_match(s, name));
    if !conf.active() {
        // As on a first visit: this location's names go, the rest stays.
        strip_names(r, protected)?;
        ctx.concluded_at.set((conf, r.uri_changes()));
        return Ok(());
    }
    // SAFETY: null or a location conf, which outlives every request.
    let previous = unsafe { ctx.headers_from.get().as_ref() };
    strip_names(r, |name| {
        protected(name)
            || previous.is_some_and(|p| {
                p.identity_headers()
                    .iter()
                    .any(|h| header_names_match(&h.name, name))
                    || p.assertion_header()
                        .is_some_and(|a| header_names_match(&a.name, name))
            })
    })?;
    ctx.headers_from.set(ptr::null());
    ctx.accepted.set(false);
    Ok(())
}

/// Post-read phase, main requests only, before any location is chosen: removes every
/// header name the module protects anywhere in this server. Subrequests share the main
/// request's header list, so none of them, and no redirect or sibling location, ever
/// sees a client's copy. The copies of `identity_pass_client_header` names are kept
/// first (`client_headers`), for the identity subrequest alone.
pub extern "C" fn post_read_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls phase handlers with a live request.
    let r = unsafe { &mut *r };
    let srv = srv_conf(r);
    let names = &srv.protected;
    if !ptr::eq(r, r.main) || names.is_empty() {
        return NGX_DECLINED;
    }
    // The client's copies of identity_pass_client_header names, for the identity
    // subrequest alone, taken before they go.
    let kept = if srv.pass_client.is_empty() {
        Ok(())
    } else {
        client_headers::keep(r, &srv.pass_client)
    };
    let stripped = kept
        .and_then(|()| strip_names(r, |name| names.iter().any(|n| header_names_match(n, name))));
    match stripped {
        Ok(()) => {
            mark_stripped(r);
            NGX_DECLINED
        }
        Err(e) => {
            ngx_log_error!(NGX_LOG_ERR, r.connection_log(), "identity: {e}");
            rc(HTTPStatus::INTERNAL_SERVER_ERROR)
        }
    }
}

/// Precontent phase, which subrequests run (they skip the access phase): a subrequest
/// into a location where the module is active gets no exchange of its own. It is served
/// only when the main request's identity was accepted for the same question, and then
/// carries the main request's identity headers; anything else is refused. For the main
/// request, where the module is active, the session cookie is stripped (again).
pub extern "C" fn precontent_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls phase handlers with a live request.
    let r = unsafe { &mut *r };
    let conf = location_conf(r);
    if ptr::eq(r, r.main) {
        // The exchange runs last in the access phase, so under `satisfy any` an `allow`
        // that admits the client skips it: the session cookie still stays behind.
        if !conf.active() {
            return NGX_DECLINED;
        }
        return match strip_session_cookie(r, conf) {
            Ok(()) => NGX_DECLINED,
            Err(_) => NGX_ERROR,
        };
    }
    if !conf.active() || subrequest_may_pass(r, conf) {
        return require::subrequest_refusal(r, conf).unwrap_or(NGX_DECLINED);
    }
    ngx_log_error!(
        NGX_LOG_ERR,
        r.connection_log(),
        "identity: subrequest to a protected location refused: the main request has no identity accepted for the same identity_request"
    );
    rc(HTTPStatus::UNAUTHORIZED)
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

fn run(r: &mut ngx_http_request_t, conf: &IdentityConf) -> Result<Next, HandlerError> {
    // access_strip_handler removed the spoofed headers (and, after a redirect, the
    // previous location's identity headers); where the module is off, nothing else.
    if !conf.active() {
        // Where identity_require is in force, no identity means a refusal.
        let refused = require::module_off_here(r, conf)?;
        return Ok(refused.unwrap_or(Next::Phase(NGX_DECLINED)));
    }
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

    exchange(r, conf)
}

/// A location reached after this request's verdict was given in another, once
/// `leave_previous_location` removed the previous location's identity headers.
fn revisit(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &RequestCtx,
) -> Result<Next, HandlerError> {
    // SAFETY: null or a location conf, which outlives every request.
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
        ctx.cause.set(Some(Reason::DuplicateCredential));
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
        ctx.cause.set(Some(Reason::DuplicateCredential));
        return conclude(r, conf, ctx, Verdict::Respond(400, IdentityStatus::Denied));
    }

    if let Some(sealed) = conf.sealed_cookie() {
        match open_sealed(r, sealed) {
            Ok(opened) => {
                *ctx.answer.write() = Answer {
                    status: 200,
                    body: opened.identity,
                    ..Answer::default()
                };
                // The spans point into the same bytes, now the answer's body.
                let _ = ctx.claims.set(Ok(opened.claims));
                ctx.sealed.set(true);
                return finish(r, conf, ctx);
            }
            Err(reason) => {
                ngx_log_debug!(
                    r.connection_log(),
                    "identity: sealed cookie not used: {reason}"
                );
                if reason == crate::sealed::OpenError::Revoked {
                    ctx.cause.set(Some(Reason::Revoked));
                } else if headers_in::has_cookie(r, &sealed.name) {
                    ctx.cause.set(Some(Reason::SealedInvalid));
                }
                if conf.enabled().is_none() {
                    ctx.basis.set(Basis::NoCredential);
                    return conclude(r, conf, ctx, conf.policy().no_credential());
                }
            }
        }
    }

    let key = match conf.key_variable {
        // The usual key, one variable: read as the script engine would, without it.
        Some(index) => {
            crate::variables::read_as_complex_value(r, index).ok_or(HandlerError::Key)?
        }
        None => {
            let mut key = ngx_str_t::default();
            // SAFETY: conf.key is a compiled complex value (merge guarantees one).
            if unsafe { ngx_http_complex_value(r, conf.key, &mut key) } != NGX_OK {
                return Err(HandlerError::Key);
            }
            key
        }
    };
    // A client header passed to the user service is a credential too.
    let passed = client_headers::passed(r, conf);
    if key.len == 0 && passed.is_empty() {
        ctx.basis.set(Basis::NoCredential);
        return conclude(r, conf, ctx, conf.policy().no_credential());
    }

    if let Some(zone) = conf.cache_zone() {
        // The key is the question (this server's identity_request URI) and the credential:
        // the key's value and the client headers passed, all the user service judges.
        let passed: Vec<_> = passed
            .iter()
            .map(|h| (h.key.as_bytes(), h.value.as_bytes()))
            .collect();
        let tag = zone.entry_tag(
            &conf.question,
            &conf.question_hasher,
            key.as_bytes(),
            &passed,
        );
        if let Some(tag) = tag {
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
