//! Opening the request's sealed cookie (`identity_sealed_cookie`).

use ngx::ffi::ngx_http_request_t;

use crate::claims::Claims;
use crate::config::SealedCookie;
use crate::header::cookie_value;
use crate::headers_in;
use crate::module::main_conf;
use crate::sealed::{self, OpenError, Validity};

/// A sealed cookie that opened.
pub struct Opened {
    /// The cookie's value as sent (what a revocation names).
    pub cookie: Vec<u8>,
    pub identity: Vec<u8>,
    pub claims: Claims,
}

/// Opens the request's sealed cookie. Every failure is one outcome for the client; the
/// reason goes to the debug log only. A revoked cookie (`identity_sealed_revoke`, or the
/// fleet's) does not open.
pub fn open_sealed(r: &ngx_http_request_t, cookie: &SealedCookie) -> Result<Opened, OpenError> {
    let main = main_conf(r);
    let Some(ring) = main.keyring.as_ref() else {
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
    let opened = sealed::open_with_claims(ring, &cookie.name, &value, validity).and_then(
        |(identity, claims)| {
            if crate::fleet::is_revoked(main, &value) {
                return Err(OpenError::Revoked);
            }
            Ok(Opened {
                cookie: value,
                identity,
                claims,
            })
        },
    );
    opened.inspect_err(|&e| crate::metrics::count_sealed_failure(e))
}
