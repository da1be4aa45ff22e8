//! `identity_jwks`: a content handler that answers with the public keys of every
//! `identity_assertion_key` as a JWKS (RFC 7517), for business services to verify
//! assertions with.

use core::ptr;

use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_create_temp_buf, ngx_http_output_filter, ngx_http_request_t,
    ngx_http_send_header, ngx_int_t, ngx_list_push, ngx_table_elt_t,
};
use ngx::http::HTTPStatus;

use crate::module::main_conf;
use crate::ngx_codes::{rc, NGX_ERROR, NGX_OK};

/// How long verifiers may cache the JWKS. Rotation publishes a new key (second, not yet
/// signing) at least this long before it signs, so a verifier's cached copy always holds
/// the signing key; short enough that a removed key stops being trusted soon.
const CACHE_CONTROL: &[u8] = b"max-age=300";

pub extern "C" fn jwks_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    let r = match crate::content::start(r, crate::content::READS) {
        Ok(r) => r,
        Err(code) => return code,
    };
    // Merging refuses identity_jwks without keys.
    let Some(keys) = main_conf(r).assertion_keys.as_ref() else {
        return rc(HTTPStatus::INTERNAL_SERVER_ERROR);
    };
    let body = keys.jwks();
    r.headers_out.status = HTTPStatus::OK.into();
    r.headers_out.content_length_n = body.len() as i64;
    let content_type = b"application/json";
    r.headers_out.content_type = ngx::ffi::ngx_str_t {
        len: content_type.len(),
        data: content_type.as_ptr() as *mut u8,
    };
    r.headers_out.content_type_len = content_type.len();
    // SAFETY: headers_out.headers is the request's live list of ngx_table_elt_t.
    let h = unsafe { ngx_list_push(&mut r.headers_out.headers) } as *mut ngx_table_elt_t;
    if h.is_null() {
        return NGX_ERROR;
    }
    // SAFETY: h is a fresh element; nginx only reads the static name and value.
    unsafe {
        ptr::write_bytes(h, 0, 1);
        (*h).hash = 1;
        (*h).key = ngx::ngx_string!("Cache-Control");
        (*h).value = ngx::ffi::ngx_str_t {
            len: CACHE_CONTROL.len(),
            data: CACHE_CONTROL.as_ptr() as *mut u8,
        };
    }
    // SAFETY: r is live and its headers are set.
    let rc = unsafe { ngx_http_send_header(r) };
    if rc == NGX_ERROR || rc > NGX_OK || r.header_only() != 0 {
        return rc;
    }
    // SAFETY: the request pool outlives the response.
    let b: *mut ngx_buf_t = unsafe { ngx_create_temp_buf(r.pool, body.len()) };
    if b.is_null() {
        return NGX_ERROR;
    }
    // SAFETY: b has room for the body; it is the only and last buffer.
    unsafe {
        ptr::copy_nonoverlapping(body.as_ptr(), (*b).last, body.len());
        (*b).last = (*b).last.add(body.len());
        (*b).set_last_buf(1);
        (*b).set_last_in_chain(1);
    }
    let mut out = ngx_chain_t {
        buf: b,
        next: ptr::null_mut(),
    };
    // SAFETY: out is a valid one-link chain for the live request.
    unsafe { ngx_http_output_filter(r, &mut out) }
}
