//! `identity_require`: the per-route permission, checked once an identity is accepted
//! (from the user service, the cache or a sealed cookie). Every value of every
//! `identity_require` in force must be non-empty and neither `0` nor `false`; the first
//! that is not decides the status. Where one is in force and there is no identity (an
//! anonymous or failed pass, or the module off), the request is refused with 401.
//!
//! The refusal is returned to the access phase, like `auth_request`'s: under
//! `satisfy any`, another access module that allows the request lets it through (still
//! without identity headers, and with `$identity_status` `FORBIDDEN`).

use core::ptr;

use ngx::ffi::{ngx_http_complex_value, ngx_http_request_t, ngx_int_t, ngx_str_t, NGX_LOG_INFO};
use ngx::ngx_log_error;

use crate::config::{IdentityConf, Require};
use crate::decision::{required_value_passes, IdentityStatus, Reason};
use crate::ngx_codes::NGX_OK;
use crate::outcome::{ConnectionLog, Next};
use crate::pool::NoMemory;
use crate::request_ctx::{new_request_ctx, request_ctx, RequestCtx, State};

/// The first `identity_require` in force for `r` that refuses it, if any. A value that
/// cannot be evaluated refuses (fail closed).
pub fn refusal<'c>(r: &mut ngx_http_request_t, conf: &'c IdentityConf) -> Option<&'c Require> {
    conf.requires().iter().find(|req| {
        req.values.iter().any(|&cv| {
            let mut value = ngx_str_t::default();
            // SAFETY: r is a live request; cv was compiled at configuration time.
            let rc = unsafe { ngx_http_complex_value(r, cv, &mut value) };
            rc != NGX_OK || !required_value_passes(value.as_bytes())
        })
    })
}

/// Refuses the request with `code` for `req`: `$identity_status` `FORBIDDEN`, and
/// `$identity_reason` `forbidden`, or `no_identity`'s reason when there was no identity.
pub fn refuse(
    r: &ngx_http_request_t,
    ctx: &RequestCtx,
    req: &Require,
    code: u16,
    no_identity: Option<Reason>,
) -> Next {
    log_refusal(r, req, no_identity.is_some());
    ctx.decide(IdentityStatus::Forbidden);
    if no_identity.is_some() {
        ctx.reason.set(no_identity);
    }
    Next::Phase(code as ngx_int_t)
}

/// A main request in a location where the module is off: refused with 401 when an
/// `identity_require` is in force here, since there is no identity to check.
pub fn module_off_here(
    r: &mut ngx_http_request_t,
    conf: &IdentityConf,
) -> Result<Option<Next>, NoMemory> {
    let Some(req) = conf.requires().first() else {
        return Ok(None);
    };
    let ctx = match request_ctx(r) {
        Some(ctx) => ctx,
        None => new_request_ctx(r)?,
    };
    // After a redirect: why the earlier location had no identity, if it had none.
    let why = ctx.reason.get().unwrap_or(Reason::NoCredential);
    let next = refuse(r, ctx, req, 401, Some(why));
    ctx.concluded_at.set((conf, r.uri_changes()));
    ctx.state.set(State::Finished(401));
    Ok(Some(next))
}

/// A subrequest into a location with `identity_require` (not the module's own
/// subrequest): checked against the main request's accepted identity; 401 without one.
pub fn subrequest_refusal(r: &mut ngx_http_request_t, conf: &IdentityConf) -> Option<ngx_int_t> {
    let first = conf.requires().first()?;
    let ctx = request_ctx(r);
    if ctx.is_some_and(|c| ptr::eq(c.subrequest.get(), r)) {
        return None;
    }
    let accepted = ctx.is_some_and(|c| c.accepted.get() && c.identity_visible.get());
    if !accepted {
        log_refusal(r, first, true);
        return Some(401);
    }
    let req = refusal(r, conf)?;
    log_refusal(r, req, false);
    Some(req.error as ngx_int_t)
}

fn log_refusal(r: &ngx_http_request_t, req: &Require, no_identity: bool) {
    let why = if no_identity {
        "there is no identity"
    } else {
        "a value is empty, \"0\" or \"false\""
    };
    ngx_log_error!(
        NGX_LOG_INFO,
        r.connection_log(),
        "identity: refused by identity_require at {}: {why}",
        req.at
    );
}
