//! Carrying out a verdict: the session cookie stripped, the identity headers set (all
//! or none), a refusal relayed, and the result remembered for later visits.

use ngx::ffi::{ngx_http_complex_value, ngx_http_request_t, ngx_int_t, ngx_str_t, NGX_LOG_ERR};
use ngx::ngx_log_error;

use crate::assertion_header::assertion_header;
use crate::config::{HeaderSource, IdentityConf};
use crate::decision::{IdentityStatus, Reason, Verdict};
use crate::header::{check_header_value, strip_cookies};
use crate::headers_in::{self, Edit};
use crate::ngx_codes::{NGX_DONE, NGX_ERROR, NGX_OK};
use crate::outcome::{ConnectionLog, HandlerError, Next};
use crate::pool::copy_to_pool;
use crate::pool::NoMemory;
use crate::relay::relay;
use crate::request_ctx::{ClaimText, RequestCtx, State};
use crate::require;

/// Carries out a verdict and remembers the result for later visits.
pub fn conclude(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &RequestCtx,
    verdict: Verdict,
) -> Result<Next, HandlerError> {
    let next = apply(r, conf, ctx, verdict)?;
    crate::metrics::count_verdict(ctx);
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
        Verdict::Allow => {
            // Headers first (all or none), then identity_require, then the assertion, so
            // a refused request is never signed for.
            // The evaluated values, one per identity_header (empty: not set), on the
            // stack for the usual few headers: a hit allocates nothing for them.
            let count = conf.identity_headers().len();
            let mut inline = [ngx_str_t::default(); INLINE_HEADERS];
            let mut spill = Vec::new();
            let values: &mut [ngx_str_t] = match inline.get_mut(..count) {
                Some(values) => values,
                None => {
                    spill.resize(count, ngx_str_t::default());
                    &mut spill
                }
            };
            let checked = identity_headers(r, conf, ctx, values).and_then(|()| {
                match require::refusal(r, conf) {
                    Some(req) => Ok(Err(req)),
                    None => assertion_header(r, conf, ctx)
                        .map(Ok)
                        .map_err(|e| (e, Reason::InvalidBody)),
                }
            });
            match checked {
                Ok(Err(req)) => {
                    // The identity stays visible to the log, but reaches no upstream.
                    Ok(require::refuse(r, ctx, req, req.error, None))
                }
                Ok(Ok(assertion)) => {
                    for (h, value) in conf.identity_headers().iter().zip(values.iter()) {
                        if value.len != 0 {
                            headers_in::add_request_header(
                                r,
                                h.name(),
                                h.lowcase_name(),
                                h.indexed,
                                *value,
                            )?;
                        }
                    }
                    if let Some(a) = assertion {
                        headers_in::add_request_header(
                            r,
                            a.name,
                            a.lowcase_name,
                            a.indexed,
                            a.value,
                        )?;
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
                    ctx.decide(outcome);
                    Ok(Next::Phase(NGX_OK))
                }
                Err((reason, cause)) => {
                    ngx_log_error!(NGX_LOG_ERR, r.connection_log(), "identity: {reason}");
                    ctx.identity_visible.set(false);
                    ctx.cause.set(Some(cause));
                    apply(r, conf, ctx, conf.policy().error())
                }
            }
        }
        Verdict::PassWithout(status) => {
            ctx.decide(status);
            if let Some(req) = conf.requires().first() {
                // No identity where one is required.
                return Ok(require::refuse(r, ctx, req, 401, ctx.reason.get()));
            }
            Ok(Next::Phase(NGX_OK))
        }
        Verdict::Respond(code, status) => {
            ctx.decide(status);
            Ok(Next::Phase(code as ngx_int_t))
        }
        Verdict::Relay(code) => {
            ctx.decide(IdentityStatus::Denied);
            let answer = ctx.answer();
            relay(r, &answer, code)
        }
    }
}

/// How many identity headers' values are held on the stack; more go in a Vec.
const INLINE_HEADERS: usize = 8;

/// Evaluates every `identity_header` value into `values` (one slot per header, in
/// order; an empty value is not set); all or none are set. A claim variable that finds
/// no JSON object records it in the context, which fails the whole set.
fn identity_headers(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &RequestCtx,
    values: &mut [ngx_str_t],
) -> Result<(), (String, Reason)> {
    ctx.identity_visible.set(true);
    for (h, slot) in conf.identity_headers().iter().zip(values.iter_mut()) {
        let mut value = ngx_str_t::default();
        let source = match &h.source {
            // A variable of the configuration's own under that exact name wins, as in nginx.
            HeaderSource::Claim(name)
                if crate::module::main_conf(r)
                    .shadowed_claims
                    .iter()
                    .any(|n| n == name.as_bytes()) =>
            {
                &HeaderSource::Complex
            }
            HeaderSource::AnswerHeader(name)
                if crate::module::main_conf(r)
                    .shadowed_answer_headers
                    .iter()
                    .any(|n| n == name) =>
            {
                &HeaderSource::Complex
            }
            source => source,
        };
        let evaluated = match *source {
            // What `$identity` gives, without the script engine's copy.
            HeaderSource::Identity => {
                if let Some((data, len)) = ctx.identity() {
                    value = ngx_str_t {
                        data: data as *mut u8,
                        len,
                    };
                }
                NGX_OK
            }
            // What `$identity_claim_NAME` gives; a body without claims is recorded in the
            // context, as through the variable, and fails the set below.
            HeaderSource::Claim(ref name) => match ctx.claim(name) {
                Ok(Some(ClaimText::InBody(data, len))) => {
                    value = ngx_str_t {
                        data: data as *mut u8,
                        len,
                    };
                    NGX_OK
                }
                Ok(Some(ClaimText::Owned(text))) => match copy_to_pool(r.pool, &text) {
                    Ok(copy) => {
                        value = copy;
                        NGX_OK
                    }
                    Err(NoMemory) => NGX_ERROR,
                },
                Ok(None) | Err(_) => NGX_OK,
            },
            // What `$identity_answer_header_NAME` gives, without the script engine's copy.
            HeaderSource::AnswerHeader(ref name) => {
                if let Some((data, len)) = ctx.answer_header(name) {
                    value = ngx_str_t {
                        data: data as *mut u8,
                        len,
                    };
                }
                NGX_OK
            }
            // SAFETY: h.value was compiled at configuration time for this module.
            HeaderSource::Complex => unsafe { ngx_http_complex_value(r, h.value, &mut value) },
        };
        if evaluated != NGX_OK {
            return Err((
                format!(
                    "the value of identity_header \"{}\" could not be evaluated",
                    String::from_utf8_lossy(&h.name)
                ),
                Reason::ServiceError,
            ));
        }
        if let Some(e) = ctx.claims_failed() {
            return Err((
                format!(
                    "identity_header \"{}\" uses $identity_claim_*, but {e}",
                    String::from_utf8_lossy(&h.name)
                ),
                Reason::InvalidBody,
            ));
        }
        if value.len == 0 {
            continue;
        }
        if let Err(why) = check_header_value(value.as_bytes()) {
            return Err((
                format!(
                    "identity_header \"{}\" value {why}, so it is not sent",
                    String::from_utf8_lossy(&h.name)
                ),
                Reason::UnsafeValue,
            ));
        }
        *slot = value;
    }
    Ok(())
}

pub fn strip_session_cookie(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
) -> Result<(), NoMemory> {
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
