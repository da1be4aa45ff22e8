//! `identity_cache_purge zone`: a content handler that removes the entry of the
//! credential the request carries (its `identity_key`), e.g. when the user logs out.

use ngx::ffi::{ngx_http_complex_value, ngx_http_request_t, ngx_int_t, ngx_str_t};
use ngx::http::HTTPStatus;

use crate::cache_entry::key_input_with_headers;
use crate::config::zone_of;
use crate::module::location_conf;

use crate::ngx_codes::{rc, NGX_OK};

pub extern "C" fn purge_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    let r = match crate::content::start(r, crate::content::REMOVES) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let conf = location_conf(r);
    let Some(zone) = zone_of(conf.purge_zone) else {
        return rc(HTTPStatus::INTERNAL_SERVER_ERROR);
    };
    let mut key = ngx_str_t::default();
    // SAFETY: conf.key is a compiled complex value (merge guarantees one).
    if unsafe { ngx_http_complex_value(r, conf.key, &mut key) } != NGX_OK {
        return rc(HTTPStatus::INTERNAL_SERVER_ERROR);
    }
    // The client headers this location passes are part of the credential, as in
    // `handler::exchange`.
    let passed = crate::client_headers::passed(r, conf);
    if key.len == 0 && passed.is_empty() {
        return rc(HTTPStatus::NOT_FOUND);
    }
    let passed: Vec<_> = passed
        .iter()
        .map(|h| (h.key.as_bytes(), h.value.as_bytes()))
        .collect();
    let removed = match zone.fleet.get() {
        // A synced zone: the fleet digest names the entries everywhere; it is published
        // whether or not this gateway held one, since another may.
        Some(fleet) => {
            let digest = fleet.key.credential_digest(key.as_bytes(), &passed);
            crate::fleet::publish_purge(&fleet.key, fleet.sync_index, digest);
            zone.purge_digest(&digest)
        }
        // An entry is keyed by question and credential: remove the credential's entry
        // for every question (server{} and identity_request URI) asked through this zone,
        // so a logout ends them all.
        None => {
            let mut removed = false;
            for question in zone.questions() {
                let Some(tag) =
                    zone.tag(&key_input_with_headers(&question, key.as_bytes(), &passed))
                else {
                    return rc(HTTPStatus::INTERNAL_SERVER_ERROR);
                };
                removed |= zone.purge(&tag);
            }
            removed
        }
    };
    let status = match (removed, zone.fleet.get().is_some()) {
        (true, _) => HTTPStatus::NO_CONTENT,
        // A synced zone: nothing here, but the fleet was told.
        (false, true) => HTTPStatus::ACCEPTED,
        (false, false) => return rc(HTTPStatus::NOT_FOUND),
    };
    crate::content::send_empty(r, status)
}
