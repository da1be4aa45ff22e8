//! The client's copies of the headers `identity_pass_client_header` names: kept in
//! post-read, just before the server-wide strip removes them from the request, and
//! handed to the identity subrequest only (`subrequest.rs`). The main request's header
//! list, which every upstream and every other subrequest reads, never holds them again.

use core::ffi::c_void;
use core::ptr;

use ngx::ffi::{ngx_http_request_t, ngx_pool_cleanup_add, ngx_table_elt_t};

use crate::config::IdentityConf;
use crate::headers_in;
use crate::pool::NoMemory;

/// The kept headers, whole: their names and values point into the request's header
/// buffers (or its pool), which live as long as the request.
struct Kept(Vec<ngx_table_elt_t>);

/// Keeps the client's headers whose name is one of `names` (case-insensitively; a
/// look-alike spelling such as `X_Example` is not kept, only stripped), in the client's
/// order. Called once, in post-read, for the main request.
pub fn keep(r: &mut ngx_http_request_t, names: &[Vec<u8>]) -> Result<(), NoMemory> {
    let kept = headers_in::copies(r, |name| names.iter().any(|n| n.eq_ignore_ascii_case(name)));
    if kept.is_empty() {
        return Ok(());
    }
    // SAFETY: r's pool is live; the entry owns room for one Kept (nginx aligns it to the
    // pointer size, which covers a Vec).
    let cln = unsafe { ngx_pool_cleanup_add(r.pool, size_of::<Kept>()) };
    // SAFETY: a non-null result is a fresh cleanup entry.
    let Some(cln) = (unsafe { cln.as_mut() }) else {
        return Err(NoMemory);
    };
    // SAFETY: cln.data is room for one Kept; drop_kept drops it once, with the pool.
    unsafe { ptr::write(cln.data as *mut Kept, Kept(kept)) };
    cln.handler = Some(drop_kept);
    Ok(())
}

/// The kept headers that `conf` hands to its identity subrequest, in the client's order.
pub fn passed(r: &ngx_http_request_t, conf: &IdentityConf) -> Vec<ngx_table_elt_t> {
    let names = conf.pass_client_headers();
    if names.is_empty() {
        return Vec::new();
    }
    let Some(kept) = kept(r) else {
        return Vec::new();
    };
    kept.0
        .iter()
        .filter(|h| {
            names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(h.key.as_bytes()))
        })
        .copied()
        .collect()
}

/// The main request's kept headers, found in its pool's cleanup list (a request's
/// module context is cleared by an internal redirect; the pool is not).
fn kept<'a>(r: &ngx_http_request_t) -> Option<&'a Kept> {
    let ours = drop_kept as unsafe extern "C" fn(*mut c_void);
    // SAFETY: r->main is the live main request; its pool's cleanup list is a valid
    // singly linked list.
    let mut cln = unsafe { (*(*r.main).pool).cleanup };
    // SAFETY: as above.
    while let Some(c) = unsafe { cln.as_ref() } {
        if c.handler.map(|h| h as *const ()) == Some(ours as *const ()) {
            // SAFETY: only `keep` registers drop_kept, with a Kept as its data, which
            // lives until the pool is destroyed and is only ever shared.
            return unsafe { (c.data as *const Kept).as_ref() };
        }
        cln = c.next;
    }
    None
}

/// The cleanup handler of the kept headers; also how `kept` recognises them.
unsafe extern "C" fn drop_kept(data: *mut c_void) {
    // SAFETY: data is the Kept written by `keep`; a pool runs each cleanup once.
    unsafe { ptr::drop_in_place(data as *mut Kept) };
}
