//! The identity subrequest: a bodiless GET to the internal location, read into memory,
//! as `ngx_http_auth_request_module.c` drives its own (which is header-only).

use core::ffi::c_void;
use core::ptr;

use ngx::ffi::{
    ngx_alloc_chain_link, ngx_create_temp_buf, ngx_http_post_subrequest_t, ngx_http_request_body_t,
    ngx_http_request_t, ngx_http_subrequest, ngx_int_t, ngx_palloc, ngx_pcalloc, ngx_str_t,
    NGX_HTTP_SUBREQUEST_IN_MEMORY, NGX_HTTP_SUBREQUEST_WAITED,
};
use ngx::ngx_log_debug;

use crate::decision::relayed_header;
use crate::handler::{Answer, RequestCtx, State};
use crate::header::is_withheld_from_subrequest;
use crate::headers_in;

const NGX_OK: ngx_int_t = 0;
const NGX_ERROR: ngx_int_t = -1;
const SPECIAL_RESPONSE: ngx_int_t = 300;

/// Starts the subrequest to `uri`; its completion fills `ctx.answer` and wakes `r`.
pub fn start(
    r: &mut ngx_http_request_t,
    uri: &ngx_str_t,
    ctx: &mut RequestCtx,
    max_size: usize,
) -> Result<(), ()> {
    // SAFETY: the request pool outlives the subrequest.
    let ps = unsafe { ngx_palloc(r.pool, size_of::<ngx_http_post_subrequest_t>()) }
        as *mut ngx_http_post_subrequest_t;
    if ps.is_null() {
        return Err(());
    }
    // SAFETY: ps is a fresh allocation; ctx lives in the same pool.
    unsafe {
        (*ps).handler = Some(subrequest_done);
        (*ps).data = ctx as *mut RequestCtx as *mut c_void;
    }
    let mut uri = *uri;
    let mut sr: *mut ngx_http_request_t = ptr::null_mut();
    let flags = (NGX_HTTP_SUBREQUEST_IN_MEMORY | NGX_HTTP_SUBREQUEST_WAITED) as ngx_int_t;
    // SAFETY: r is the live main request; uri lives in the configuration.
    if unsafe { ngx_http_subrequest(r, &mut uri, ptr::null_mut(), &mut sr, ps, flags as _) }
        != NGX_OK
    {
        return Err(());
    }
    // SAFETY: on success sr is the new subrequest, not yet run.
    let sr = unsafe { sr.as_mut() }.ok_or(())?;

    // A GET with no body whatever the client's method: an empty body object stops the
    // upstream from reading or forwarding the client's, and the client's body and
    // connection headers stay behind so a chunked upload or a WebSocket handshake does
    // not reach the user service as one.
    // SAFETY: the request pool outlives the subrequest.
    sr.request_body = unsafe { ngx_pcalloc(r.pool, size_of::<ngx_http_request_body_t>()) }
        as *mut ngx_http_request_body_t;
    if sr.request_body.is_null() {
        return Err(());
    }
    // SAFETY: sr was just created and shares r's pool.
    unsafe { headers_in::give_subrequest_filtered_headers(sr, is_withheld_from_subrequest) }
        .map_err(|_| ())?;
    let hin = &mut sr.headers_in;
    hin.content_length = ptr::null_mut();
    hin.content_length_n = -1;
    hin.transfer_encoding = ptr::null_mut();
    hin.set_chunked(0);
    hin.upgrade = ptr::null_mut();
    hin.connection = ptr::null_mut();
    hin.keep_alive = ptr::null_mut();
    hin.expect = ptr::null_mut();

    // The body lands in this buffer: nginx's in-memory filter appends to an existing
    // `out` buffer and fails the subrequest when it is full, which makes
    // identity_max_size the one limit instead of subrequest_output_buffer_size.
    // SAFETY: the request pool outlives the subrequest.
    let b = unsafe { ngx_create_temp_buf(r.pool, max_size) };
    // SAFETY: as above.
    let out = unsafe { ngx_alloc_chain_link(r.pool) };
    if b.is_null() || out.is_null() {
        return Err(());
    }
    // SAFETY: b and out are fresh allocations.
    unsafe {
        (*b).set_last_buf(1);
        (*out).buf = b;
        (*out).next = ptr::null_mut();
    }
    sr.out = out;
    Ok(())
}

/// nginx calls this each time the subrequest is finalized (an error page may follow a
/// failure, so more than once); the last call has the final status.
unsafe extern "C" fn subrequest_done(
    sr: *mut ngx_http_request_t,
    data: *mut c_void,
    rc: ngx_int_t,
) -> ngx_int_t {
    // SAFETY: data is the RequestCtx set in `start`, alive for the main request.
    let (sr, ctx) = unsafe { (&mut *sr, &mut *(data as *mut RequestCtx)) };
    let earlier_failure = match ctx.state {
        State::Answered => ctx.answer.failure,
        _ => None,
    };
    ctx.answer = read_answer(sr, rc);
    if ctx.answer.failure.is_none() {
        ctx.answer.failure = earlier_failure;
    }
    ctx.state = State::Answered;
    // SAFETY: sr is live; its connection has a log.
    ngx_log_debug!(
        unsafe { (*sr.connection).log },
        "identity subrequest done s:{} rc:{} body:{}",
        ctx.answer.status,
        rc,
        ctx.answer.body.len()
    );
    if rc == NGX_ERROR {
        // An oversized or broken answer is this request's error path, not a reason for
        // nginx to close the client's connection.
        return NGX_OK;
    }
    rc
}

fn read_answer(sr: &ngx_http_request_t, rc: ngx_int_t) -> Answer {
    let status = if (SPECIAL_RESPONSE..1000).contains(&rc) {
        rc as usize
    } else {
        sr.headers_out.status
    };
    let mut answer = Answer {
        status: u16::try_from(status).unwrap_or(0),
        ..Answer::default()
    };
    // SAFETY: sr->out is the buffer set in `start` (or nginx's own), in the shared pool.
    let (body, full) = unsafe {
        match sr.out.as_ref().and_then(|out| out.buf.as_ref()) {
            Some(b) if !b.pos.is_null() => (
                core::slice::from_raw_parts(b.pos, b.last.offset_from(b.pos) as usize),
                b.last == b.end,
            ),
            _ => (&[][..], false),
        }
    };
    if rc == NGX_ERROR {
        answer.failure = Some(if full {
            "the user service's body is larger than identity_max_size"
        } else {
            "the identity subrequest failed"
        });
        return answer;
    }
    answer.body = body.to_vec();
    answer.content_type = sr.headers_out.content_type.as_bytes().to_vec();
    // SAFETY: headers_out.headers is the subrequest's live response header list.
    unsafe {
        headers_in::visit(&sr.headers_out.headers, |name, value| {
            // One of each, non-empty: a client must not get two Location headers.
            let seen = answer
                .relay_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name));
            if !seen
                && !value.is_empty()
                && relayed_header(answer.status, &name.to_ascii_lowercase())
            {
                answer.relay_headers.push((name.to_vec(), value.to_vec()));
            }
        })
    };
    answer
}
