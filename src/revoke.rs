//! `identity_sealed_revoke name`: a content handler that revokes the sealed cookie `name`
//! the request carries until its `exp`, on this gateway and (with `identity_cache_sync`)
//! the fleet's.

use ngx::ffi::{ngx_conf_t, ngx_http_request_t, ngx_int_t, ngx_str_t};
use ngx::http::{HTTPStatus, HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule};

use ngx::ffi::NGX_LOG_ERR;
use ngx::ngx_log_error;

use crate::outcome::ConnectionLog;

use crate::config::{ConfigError, IdentityConf, SealedCookie};
use crate::module::{location_conf, main_conf, IdentityModule};
use crate::ngx_codes::rc;
use crate::parsers::{set_once, text};
use crate::sealed_cookie::open_sealed;

/// The directive: this location revokes; the revocation table exists.
pub fn revoke_directive(
    cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let name = a[1].as_bytes();
    if name.is_empty() {
        return Err(ConfigError::InvalidValue(
            text(&a[1]),
            "it must be the sealed cookie's name",
        ));
    }
    set_once(&mut conf.sealed_revoke, name.to_vec())?;
    let main = IdentityModule::main_conf_mut(cf).ok_or(ConfigError::NoMemory)?;
    main.revoke_places.push(crate::fleet_conf::place(cf));
    if main.revocations.is_none() {
        main.revocations = Some(crate::revocations::add_zone(cf).ok_or(ConfigError::NoMemory)?);
    }
    // In a location, cf->ctx holds the location's core conf: its content handler.
    let clcf = NgxHttpCoreModule::location_conf_mut(cf).ok_or(ConfigError::NoMemory)?;
    clcf.handler = Some(revoke_handler);
    Ok(())
}

/// Revokes the request's sealed cookie `name`: 204, 404 if none opens, 503 if this
/// gateway could not keep the revocation (the logout must not look done).
fn revoke_request_cookie(r: &ngx_http_request_t, name: &[u8]) -> HTTPStatus {
    let cookie = SealedCookie {
        name: name.to_vec(),
        max_age: None,
    };
    let Ok(opened) = open_sealed(r, &cookie) else {
        return HTTPStatus::NOT_FOUND;
    };
    let Ok(exp) = u64::try_from(opened.times.exp) else {
        return HTTPStatus::NOT_FOUND;
    };
    match crate::fleet::revoke_sealed(main_conf(r), &opened.cookie, exp) {
        Ok(()) => HTTPStatus::NO_CONTENT,
        Err(e) => {
            ngx_log_error!(
                NGX_LOG_ERR,
                r.connection_log(),
                "identity: a sealed cookie's revocation was not kept: {e}"
            );
            HTTPStatus::SERVICE_UNAVAILABLE
        }
    }
}

extern "C" fn revoke_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    let r = match crate::content::start(r, crate::content::REMOVES) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Some(name) = location_conf(r).sealed_revoke.as_deref() else {
        return rc(HTTPStatus::INTERNAL_SERVER_ERROR);
    };
    let status = revoke_request_cookie(r, name);
    if status != HTTPStatus::NO_CONTENT {
        return rc(status);
    }
    crate::content::send_empty(r, HTTPStatus::NO_CONTENT)
}
