//! What the module's own content handlers (`identity_cache_purge`,
//! `identity_sealed_revoke`, `identity_jwks`, `identity_metrics`) share: the methods they
//! answer, the request body they do not read, and an answer with no body.

use ngx::ffi::{
    ngx_http_discard_request_body, ngx_http_request_t, ngx_http_send_header, ngx_int_t,
    NGX_HTTP_DELETE, NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_POST,
};
use ngx::http::HTTPStatus;

use crate::ngx_codes::{rc, NGX_OK};

/// `GET` and `HEAD`: a handler that only reads.
pub const READS: u32 = NGX_HTTP_GET | NGX_HTTP_HEAD;
/// `DELETE` and `POST`: a handler that removes something.
pub const REMOVES: u32 = NGX_HTTP_DELETE | NGX_HTTP_POST;

/// The live request nginx hands a content handler, if its method is one of `methods`
/// and its body was discarded; otherwise the code to return (405, 500).
pub fn start<'a>(
    r: *mut ngx_http_request_t,
    methods: u32,
) -> Result<&'a mut ngx_http_request_t, ngx_int_t> {
    // SAFETY: nginx calls content handlers with a live request.
    let r = unsafe { &mut *r };
    if r.method & methods as usize == 0 {
        return Err(rc(HTTPStatus::NOT_ALLOWED));
    }
    // SAFETY: r is live; the body is not needed.
    if unsafe { ngx_http_discard_request_body(r) } != NGX_OK {
        return Err(rc(HTTPStatus::INTERNAL_SERVER_ERROR));
    }
    Ok(r)
}

/// Answers `status` (a 2xx) with no body.
pub fn send_empty(r: &mut ngx_http_request_t, status: HTTPStatus) -> ngx_int_t {
    r.headers_out.status = status.into();
    r.headers_out.content_length_n = 0;
    r.set_header_only(1);
    // SAFETY: r is live and its headers are set.
    unsafe { ngx_http_send_header(r) }
}
