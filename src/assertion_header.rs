//! `identity_assertion`: the signed assertion of an accepted identity, made (or reused
//! from this worker's `AssertionCache`) when the verdict lets the identity through.

use core::cell::RefCell;

use ngx::ffi::{ngx_http_request_t, ngx_str_t};

use crate::assertion::AssertionError;
use crate::assertion_cache::{sign_capped, AssertionCache, DEFAULT_ENTRIES};
use crate::config::IdentityConf;
use crate::module::main_conf;
use crate::pool::copy_to_pool;
use crate::request_ctx::RequestCtx;

thread_local! {
    /// One per worker (nginx runs a worker's requests on one thread), made on first use.
    static CACHE: RefCell<Option<AssertionCache>> = const { RefCell::new(None) };
}

/// The header `identity_assertion` adds for this request.
pub struct SignedHeader {
    pub name: &'static [u8],
    pub lowcase_name: &'static [u8],
    pub indexed: bool,
    pub value: ngx_str_t,
}

/// The assertion header for the identity `ctx` accepted, when the location asks for one.
/// An error (an identity that is not a JSON object, no memory) means no identity header
/// at all: the request takes the `identity_on_error` path.
pub fn assertion_header(
    r: &ngx_http_request_t,
    conf: &IdentityConf,
    ctx: &RequestCtx,
) -> Result<Option<SignedHeader>, String> {
    let Some(header) = conf.assertion_header() else {
        return Ok(None);
    };
    let fail = |why: &dyn core::fmt::Display| {
        format!(
            "identity_assertion \"{}\": {why}",
            String::from_utf8_lossy(&header.name)
        )
    };
    // Merging refuses identity_assertion without keys; this only guards the request path.
    let Some(keys) = main_conf(r).assertion_keys.as_ref() else {
        return Err(fail(&"no identity_assertion_key"));
    };
    let answer = ctx.answer();
    let identity = &answer.body[..];
    let cap = if ctx.sealed.get() {
        Some(sealed_cap(identity, conf).map_err(|e| fail(&e))?)
    } else {
        None
    };
    let now = ngx::ffi::ngx_time();
    let (signer, spec) = (keys.signing(), &header.spec);
    let copy = |token: &str| copy_to_pool(r.pool, token.as_bytes()).map_err(|e| fail(&e));
    let cached = CACHE.try_with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let cache = slot.get_or_insert_with(|| AssertionCache::new(DEFAULT_ENTRIES));
        Some(
            cache
                .assertion(signer, spec, identity, cap, now)
                .map_err(|e| fail(&e))
                .and_then(|a| copy(&a.token)),
        )
    });
    let value = match cached {
        Ok(Some(value)) => value?,
        // Only if the cache is in use further up this call (it never is) or being torn
        // down: sign without it.
        _ => {
            let a = sign_capped(signer, spec, identity, cap, now).map_err(|e| fail(&e))?;
            copy(&a.token)?
        }
    };
    Ok(Some(SignedHeader {
        name: header.name(),
        lowcase_name: header.lowcase_name(),
        indexed: header.indexed,
        value,
    }))
}

/// The first second at which the sealed cookie no longer opens here: its `exp`, or, with
/// `max_age=` and an `iat`, the second after `iat + max_age` if that comes first. An
/// assertion made from the cookie never outlives it.
fn sealed_cap(identity: &[u8], conf: &IdentityConf) -> Result<i64, AssertionError> {
    let times = crate::sealed::check_identity(identity).map_err(|_| AssertionError::Expired)?;
    let max_age = conf.sealed_cookie().and_then(|c| c.max_age);
    Ok(match (times.iat, max_age) {
        (Some(iat), Some(max_age)) => times.exp.min(iat.saturating_add(max_age).saturating_add(1)),
        _ => times.exp,
    })
}
