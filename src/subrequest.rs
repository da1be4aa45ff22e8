//! The identity subrequest: a bodiless GET to the internal location, read into memory,
//! as `ngx_http_auth_request_module.c` drives its own (which is header-only).

use core::ffi::c_void;
use core::ptr;

use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_http_output_body_filter_pt, ngx_http_post_subrequest_t,
    ngx_http_request_body_t, ngx_http_request_t, ngx_http_subrequest, ngx_http_top_body_filter,
    ngx_int_t, ngx_palloc, ngx_pcalloc, ngx_read_file, ngx_str_t, ngx_table_elt_t, off_t,
    NGX_HTTP_SUBREQUEST_IN_MEMORY, NGX_HTTP_SUBREQUEST_WAITED,
};
use ngx::http::HTTPStatus;
use ngx::ngx_log_debug;

use crate::decision::{relayed_header, relayed_in_every_copy};
use crate::decision::{Answer, Reason};
use crate::header::is_withheld_from_subrequest;
use crate::headers_in;
use crate::request_ctx::{request_ctx, RequestCtx, State};

use crate::ngx_codes::{self, NGX_ERROR, NGX_HTTP_SPECIAL_RESPONSE, NGX_OK};

/// Why the subrequest could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("out of memory")]
    NoMemory,
    #[error("ngx_http_subrequest() failed")]
    Subrequest,
}

/// Starts the subrequest to `uri`; its completion fills `ctx.answer` and wakes `r`.
pub fn start(
    r: &mut ngx_http_request_t,
    uri: &ngx_str_t,
    ctx: &RequestCtx,
    max_size: usize,
    passed: &[ngx_table_elt_t],
) -> Result<(), StartError> {
    // SAFETY: the request pool outlives the subrequest.
    let ps = unsafe { ngx_palloc(r.pool, size_of::<ngx_http_post_subrequest_t>()) }
        as *mut ngx_http_post_subrequest_t;
    if ps.is_null() {
        return Err(StartError::NoMemory);
    }
    // SAFETY: ps is a fresh allocation; ctx lives in the same pool.
    unsafe {
        (*ps).handler = Some(subrequest_done);
        (*ps).data = ctx as *const RequestCtx as *mut c_void;
    }
    let mut uri = *uri;
    let mut sr: *mut ngx_http_request_t = ptr::null_mut();
    let flags = (NGX_HTTP_SUBREQUEST_IN_MEMORY | NGX_HTTP_SUBREQUEST_WAITED) as ngx_int_t;
    // SAFETY: r is the live main request; uri lives in the configuration.
    if unsafe { ngx_http_subrequest(r, &mut uri, ptr::null_mut(), &mut sr, ps, flags as _) }
        != NGX_OK
    {
        return Err(StartError::Subrequest);
    }
    // SAFETY: on success sr is the new subrequest, not yet run.
    let sr = unsafe { sr.as_mut() }.ok_or(StartError::Subrequest)?;

    // A GET with no body whatever the client's method: an empty body object stops the
    // upstream from reading or forwarding the client's, and the client's body and
    // connection headers stay behind so a chunked upload or a WebSocket handshake does
    // not reach the user service as one.
    // SAFETY: the request pool outlives the subrequest.
    sr.request_body = unsafe { ngx_pcalloc(r.pool, size_of::<ngx_http_request_body_t>()) }
        as *mut ngx_http_request_body_t;
    if sr.request_body.is_null() {
        return Err(StartError::NoMemory);
    }
    // SAFETY: sr was just created and shares r's pool.
    unsafe {
        headers_in::give_subrequest_filtered_headers(sr, is_withheld_from_subrequest, passed)
    }
    .map_err(|_| StartError::NoMemory)?;
    let hin = &mut sr.headers_in;
    hin.content_length = ptr::null_mut();
    hin.content_length_n = -1;
    hin.transfer_encoding = ptr::null_mut();
    hin.set_chunked(0);
    hin.upgrade = ptr::null_mut();
    hin.connection = ptr::null_mut();
    hin.keep_alive = ptr::null_mut();
    hin.expect = ptr::null_mut();

    ctx.subrequest.set(sr);
    ctx.max_size.set(max_size);
    // SAFETY: plain read of nginx's cached clock.
    ctx.call_started_ms
        .set(unsafe { ngx::ffi::ngx_current_msec } as u64);
    Ok(())
}

/// nginx calls this each time the subrequest is finalized (an error page may follow a
/// failure, so more than once); the last call has the final status.
unsafe extern "C" fn subrequest_done(
    sr: *mut ngx_http_request_t,
    data: *mut c_void,
    rc: ngx_int_t,
) -> ngx_int_t {
    // SAFETY: data is the RequestCtx set in `start`, alive for the main request, and
    // only ever shared.
    let (sr, ctx) = unsafe { (&*sr, &*(data as *const RequestCtx)) };
    if matches!(ctx.state.get(), State::Finished(_)) {
        // Applied: identity headers and variables point into this answer for the rest
        // of the request, so nothing may replace it (nginx makes no call after the main
        // request resumed; this keeps it so if one ever came).
        return if rc == NGX_ERROR { NGX_OK } else { rc };
    }
    let earlier_failure = match ctx.state.get() {
        State::Answered => ctx.answer.read().failure,
        _ => None,
    };
    // If nginx calls this again after an error page, the filter has collected that page
    // afresh and this takes it.
    let body = ctx.body.take();
    let complete = ctx.body_complete.replace(false) || finished_by_nginx(sr, rc);
    let body_failure = ctx.body_failure.get();
    let overflow = body_failure == Some(TOO_LARGE);
    let mut answer = read_answer(sr, rc, body, body_failure);
    crate::answer_headers::take(sr, &mut answer, ctx.max_size.get());
    let by_nginx = (NGX_HTTP_SPECIAL_RESPONSE..1000)
        .contains(&rc)
        .then_some(answer.status);
    let earlier_cause = match ctx.state.get() {
        State::Answered => ctx.cause.get(),
        _ => None,
    };
    ctx.cause.set(Reason::over_passes(
        earlier_cause,
        Reason::of_call(by_nginx, overflow, rc == NGX_ERROR, complete),
    ));
    // SAFETY: plain read of nginx's cached clock.
    let now = unsafe { ngx::ffi::ngx_current_msec } as u64;
    ctx.service_ms
        .set(Some(now.saturating_sub(ctx.call_started_ms.get())));
    if answer.failure.is_none() && !complete {
        // nginx finalizes a subrequest whose upstream closed early, reset or timed out
        // after the headers with rc 0 (the result of its final flush), without the
        // last buffer: only that buffer says the body is whole.
        answer.failure = Some(INCOMPLETE);
    }
    if answer.failure.is_none() {
        // An incomplete first pass followed by a complete one (an error page nginx
        // built, or a 201/204 nginx finishes itself) is judged by the complete one.
        answer.failure = earlier_failure.filter(|&f| f != INCOMPLETE);
    }
    ngx_log_debug!(
        // SAFETY: sr is live; its connection has a log.
        unsafe { (*sr.connection).log },
        "identity subrequest done s:{} rc:{} body:{}",
        answer.status,
        rc,
        answer.body.len()
    );
    crate::metrics::count_service_call(sr, rc, ctx, complete);
    *ctx.answer.write() = answer;
    // The subrequest cached header variables from its filtered list in the array it
    // shares with the main request: let the main request read its own headers again.
    // SAFETY: sr->main is the live main request; nothing else holds a reference to it
    // while nginx runs this completion handler.
    headers_in::flush_header_variables(unsafe { &mut *sr.main });
    ctx.state.set(State::Answered);
    if rc == NGX_ERROR {
        // A broken answer is this request's error path, not a reason for nginx to
        // close the client's connection.
        return NGX_OK;
    }
    rc
}

const INCOMPLETE: &str =
    "the user service's answer ended before its last byte (closed, reset or timed out)";

/// Whether nginx, not the upstream's body, ends this subrequest: a status nginx answers
/// itself (`rc` a special response, 201 or 204: its page follows with its own last
/// buffer and a later call) or a header-only response, which has no body to cut short.
fn finished_by_nginx(sr: &ngx_http_request_t, rc: ngx_int_t) -> bool {
    rc >= NGX_HTTP_SPECIAL_RESPONSE
        || rc == ngx_codes::rc(HTTPStatus::CREATED)
        || rc == ngx_codes::rc(HTTPStatus::NO_CONTENT)
        || sr.header_only() != 0
}

fn read_answer(
    sr: &ngx_http_request_t,
    rc: ngx_int_t,
    body: Vec<u8>,
    body_failure: Option<&'static str>,
) -> Answer {
    let status = if (NGX_HTTP_SPECIAL_RESPONSE..1000).contains(&rc) {
        rc as usize
    } else {
        sr.headers_out.status
    };
    let mut answer = Answer {
        status: u16::try_from(status).unwrap_or(0),
        ..Answer::default()
    };
    if body_failure.is_some() {
        answer.failure = body_failure;
        return answer;
    }
    if rc == NGX_ERROR {
        answer.failure = Some("the identity subrequest failed");
        return answer;
    }
    answer.body = body;
    answer.content_type = sr.headers_out.content_type.as_bytes().to_vec();
    // SAFETY: headers_out.headers is the subrequest's live response header list.
    unsafe {
        headers_in::visit(&sr.headers_out.headers, |name, value| {
            take_header(&mut answer, name, value)
        })
    };
    answer
}

/// Records one of the user service's response headers in `answer`: the
/// `Cache-Control` and `Vary` lists, and the headers a refusal relays.
fn take_header(answer: &mut Answer, name: &[u8], value: &[u8]) {
    if name.eq_ignore_ascii_case(b"cache-control") {
        if !answer.cache_control.is_empty() {
            answer.cache_control.push(b',');
        }
        answer.cache_control.extend_from_slice(value);
    }
    if name.eq_ignore_ascii_case(b"vary") {
        if !answer.vary.is_empty() {
            answer.vary.push(b',');
        }
        answer.vary.extend_from_slice(value);
    }
    // Non-empty; one of each but challenges and cookies: a client must not get two
    // Location headers.
    let seen = !relayed_in_every_copy(name)
        && answer
            .relay_headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !seen && !value.is_empty() && relayed_header(answer.status, name) {
        answer.relay_headers.push((name.to_vec(), value.to_vec()));
    }
}

static mut NEXT_BODY_FILTER: ngx_http_output_body_filter_pt = None;

/// Puts `body_filter` at the head of nginx's body filter chain; from postconfiguration.
pub fn install_body_filter() {
    // SAFETY: configuration time, single-threaded; nginx's own filters do the same.
    unsafe {
        NEXT_BODY_FILTER = ngx_http_top_body_filter;
        ngx_http_top_body_filter = Some(body_filter);
    }
}

/// Collects the identity subrequest's body into its request context, up to
/// identity_max_size, and consumes it so nothing else sees it. Reading the whole
/// response and only recording an overflow keeps the upstream connection healthy and
/// the client's connection open, where nginx's own in-memory limit would close it.
///
/// Buffers come in memory or in a file (a static file, a `proxy_cache` hit, an upstream
/// body spilled to a temporary file). nginx's own in-memory subrequests have the copy
/// filter read files into memory, but this filter runs before it (a dynamic module's
/// filter is installed last, so it is called first), so it reads a file part itself
/// with `ngx_read_file`, and only when the part fits within identity_max_size.
unsafe extern "C" fn body_filter(r: *mut ngx_http_request_t, chain: *mut ngx_chain_t) -> ngx_int_t {
    // SAFETY: nginx calls body filters with a live request.
    let r_ref = unsafe { &*r };
    // The identity subrequest is never a main request: every response a client gets
    // passes straight on.
    let ctx = if ptr::eq(r, r_ref.main) {
        None
    } else {
        request_ctx(r_ref)
    };
    match ctx {
        Some(ctx) if ptr::eq(ctx.subrequest.get(), r) => {
            // SAFETY: chain is nginx's list of buffers for this call.
            unsafe { collect(ctx, chain) };
            NGX_OK
        }
        // SAFETY: the next filter was recorded at configuration time.
        _ => match unsafe { NEXT_BODY_FILTER } {
            // SAFETY: the next body filter, with the arguments nginx gave this one.
            Some(next) => unsafe { next(r, chain) },
            None => NGX_ERROR,
        },
    }
}

/// # Safety
/// `chain` is null or a valid chain of buffers owned by nginx.
unsafe fn collect(ctx: &RequestCtx, mut chain: *mut ngx_chain_t) {
    // Taken out and put back: no borrow flag to trip, whatever runs meanwhile.
    let mut body = ctx.body.take();
    // SAFETY: per the caller.
    while let Some(link) = unsafe { chain.as_ref() } {
        // SAFETY: a chain link's buf is valid.
        if let Some(b) = unsafe { link.buf.as_mut() } {
            if b.last_buf() != 0 || b.last_in_chain() != 0 {
                ctx.body_complete.set(true);
            }
            // SAFETY: b is a live buffer of this chain.
            let part = unsafe { take_part(b, &mut body, ctx.max_size.get()) };
            if let Err(why) = part {
                if ctx.body_failure.get().is_none() {
                    ctx.body_failure.set(Some(why));
                }
            }
        }
        chain = link.next;
    }
    ctx.body.set(body);
}

pub const TOO_LARGE: &str = "the user service's body is larger than identity_max_size";
const UNREADABLE: &str = "the user service's body could not be read from its file";

/// Appends the data of `b` to `body` unless that would pass `max_size`, and marks the
/// buffer consumed either way.
///
/// # Safety
/// `b` is a live buffer: `pos..last` readable when it is in memory, `file` open when
/// it is in a file.
unsafe fn take_part(
    b: &mut ngx_buf_t,
    body: &mut Vec<u8>,
    max_size: usize,
) -> Result<(), &'static str> {
    let in_memory = b.temporary() != 0 || b.memory() != 0 || b.mmap() != 0;
    let result = if in_memory {
        // A buffer both in memory and in a file holds the same bytes in both, as
        // nginx's ngx_buf_in_memory() takes it.
        let len = if b.pos.is_null() {
            0
        } else {
            // SAFETY: per the caller, pos..last is the buffer's readable data.
            unsafe { b.last.offset_from(b.pos) }.max(0) as usize
        };
        if len == 0 {
            Ok(())
        } else if body.len() + len > max_size {
            Err(TOO_LARGE)
        } else {
            // SAFETY: as above.
            body.extend_from_slice(unsafe { core::slice::from_raw_parts(b.pos, len) });
            Ok(())
        }
    } else if b.in_file() != 0 {
        let len = usize::try_from(b.file_last - b.file_pos).unwrap_or(0);
        if len == 0 {
            Ok(())
        } else if body.len() + len > max_size {
            Err(TOO_LARGE)
        } else {
            // SAFETY: per the caller, the buffer's file is open.
            unsafe { read_file_part(b, body, len) }
        }
    } else {
        Ok(())
    };
    b.pos = b.last;
    if b.in_file() != 0 {
        b.file_pos = b.file_last;
    }
    result
}

/// Appends `len` bytes of `b`'s file from `file_pos` to `body`. A blocking read of at
/// most identity_max_size (1m at most), as nginx's copy filter does without `aio`.
///
/// # Safety
/// `b.file` is null or the buffer's open file.
unsafe fn read_file_part(
    b: &ngx_buf_t,
    body: &mut Vec<u8>,
    len: usize,
) -> Result<(), &'static str> {
    if b.file.is_null() || body.try_reserve(len).is_err() {
        return Err(UNREADABLE);
    }
    let start = body.len();
    body.resize(start + len, 0);
    let mut done = 0;
    while done < len {
        // SAFETY: the destination is the len - done bytes after start + done in body,
        // just allocated; b.file is open per the caller.
        let n = unsafe {
            ngx_read_file(
                b.file,
                body.as_mut_ptr().add(start + done),
                len - done,
                b.file_pos + done as off_t,
            )
        };
        if n <= 0 {
            // An error or a file shorter than nginx said: not a whole answer.
            body.truncate(start);
            return Err(UNREADABLE);
        }
        done += n as usize;
    }
    Ok(())
}
