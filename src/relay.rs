//! Relaying the user service's refusal to the client: its status, the headers the
//! decision module allows, and its body.

use core::ptr;

use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_create_temp_buf, ngx_http_discard_request_body,
    ngx_http_output_filter, ngx_http_request_t, ngx_http_send_header, ngx_int_t, ngx_list_push,
    ngx_table_elt_t,
};
use ngx::http::HTTPStatus;

use crate::decision::Answer;
use crate::ngx_codes::{rc, NGX_ERROR, NGX_OK};
use crate::outcome::{HandlerError, Next};
use crate::pool::{copy_to_pool, NoMemory};

/// Answers the client with the user service's refusal: its status, the headers the
/// decision module allows, and its body. An empty body leaves the page to nginx, so
/// `error_page` applies as it does for `auth_request`.
pub fn relay(r: &mut ngx_http_request_t, answer: &Answer, code: u16) -> Result<Next, HandlerError> {
    // Under `satisfy any`, a 401 or 403 is handed to nginx like auth_request's: its
    // access phase keeps the code for the final answer (a 401 of any rule over a 403)
    // unless a later rule admits the client, and answers with its own page. As with
    // auth_request, only a 401's challenges go with it; its body and other headers
    // would be attached to another rule's answer.
    if (code == 401 || code == 403) && satisfy_any(r) {
        for (name, value) in &answer.relay_headers {
            if name.eq_ignore_ascii_case(b"www-authenticate") {
                add_response_header(r, name, value)?;
            }
        }
        return Ok(Next::Phase(code as ngx_int_t));
    }
    for (name, value) in &answer.relay_headers {
        add_response_header(r, name, value)?;
    }
    if answer.body.is_empty() {
        return Ok(Next::Phase(code as ngx_int_t));
    }
    // SAFETY: r is the live main request; discarding its body keeps keepalive working.
    if unsafe { ngx_http_discard_request_body(r) } != NGX_OK {
        return Ok(Next::Phase(rc(HTTPStatus::INTERNAL_SERVER_ERROR)));
    }
    r.headers_out.status = usize::from(code);
    r.headers_out.content_length_n = answer.body.len() as i64;
    if !answer.content_type.is_empty() {
        let ct = copy_to_pool(r.pool, &answer.content_type)?;
        r.headers_out.content_type = ct;
        r.headers_out.content_type_len = ct.len;
    }
    // SAFETY: r is the live main request; headers are complete.
    let rc = unsafe { ngx_http_send_header(r) };
    let rc = if rc == NGX_ERROR || rc > NGX_OK || r.header_only() != 0 {
        rc
    } else {
        // SAFETY: the request pool outlives the response.
        let b: *mut ngx_buf_t = unsafe { ngx_create_temp_buf(r.pool, answer.body.len()) };
        if b.is_null() {
            return Err(NoMemory.into());
        }
        // SAFETY: b has room for the body; it is the only and last buffer.
        unsafe {
            ptr::copy_nonoverlapping(answer.body.as_ptr(), (*b).last, answer.body.len());
            (*b).last = (*b).last.add(answer.body.len());
            (*b).set_last_buf(1);
            (*b).set_last_in_chain(1);
        }
        let mut out = ngx_chain_t {
            buf: b,
            next: ptr::null_mut(),
        };
        // SAFETY: out is a valid one-link chain for the live request.
        unsafe { ngx_http_output_filter(r, &mut out) }
    };
    // The response is complete: the access handler finalizes it as a content handler
    // would, once nothing here touches the request's memory any more.
    Ok(Next::Finalize(rc))
}

fn add_response_header(
    r: &mut ngx_http_request_t,
    name: &[u8],
    value: &[u8],
) -> Result<(), NoMemory> {
    let key = copy_to_pool(r.pool, name)?;
    let value = copy_to_pool(r.pool, value)?;
    // SAFETY: headers_out.headers is the request's live list of ngx_table_elt_t.
    let h = unsafe { ngx_list_push(&mut r.headers_out.headers) } as *mut ngx_table_elt_t;
    if h.is_null() {
        return Err(NoMemory);
    }
    // SAFETY: h is a fresh element.
    unsafe {
        ptr::write_bytes(h, 0, 1);
        (*h).hash = 1;
        (*h).key = key;
        (*h).value = value;
    }
    if name.eq_ignore_ascii_case(b"location") {
        // The header filter makes a relative Location absolute, as for any redirect.
        r.headers_out.location = h;
    } else if name.eq_ignore_ascii_case(b"www-authenticate") {
        link_challenge(r, h);
    }
    Ok(())
}

/// Records a relayed challenge in `headers_out.www_authenticate`, where nginx's access
/// phase finds the challenges to withdraw when a later rule admits the client under
/// `satisfy any`: since 1.23 a list linked through `next`, before it one header.
fn link_challenge(r: &mut ngx_http_request_t, h: *mut ngx_table_elt_t) {
    #[cfg(nginx1_23_0)]
    {
        let mut last = &mut r.headers_out.www_authenticate;
        // SAFETY: the list holds this request's live headers, each linked once.
        while let Some(prev) = unsafe { last.as_mut() } {
            last = &mut prev.next;
        }
        *last = h;
    }
    #[cfg(not(nginx1_23_0))]
    {
        r.headers_out.www_authenticate = h;
    }
}

/// Whether `satisfy any` applies to the location `r` is in.
fn satisfy_any(r: &ngx_http_request_t) -> bool {
    // SAFETY: every location has the core module's loc conf at its index; it lives in
    // the configuration, which outlives the request.
    unsafe {
        let clcf = *r.loc_conf.add(ngx::ffi::ngx_http_core_module.ctx_index)
            as *const ngx::ffi::ngx_http_core_loc_conf_t;
        clcf.as_ref()
            .is_some_and(|c| c.satisfy == ngx::ffi::NGX_HTTP_SATISFY_ANY as usize)
    }
}
