//! `$identity_answer_header_NAME`: the user service's response headers as identity
//! values, like `auth_request_set $x $upstream_http_NAME`, kept with the answer (in the
//! request and in the cache) so redirects and cache hits read the same values. The
//! rules (names, joining, checks, bounds) are in `identity_core::answer_headers`.
//!
//! Only the names the configuration references are kept: at postconfiguration, every
//! variable a directive compiled (identity_header, identity_require, log_format,
//! add_header, map, ...) is in the core module's indexed list, and the names there with
//! this prefix are recorded in `MainConf`. A name read only at run time by name (SSI
//! `echo`, njs) is not collected and reads as empty.

use ngx::ffi::{
    ngx_conf_t, ngx_http_request_t, ngx_http_variable_t, ngx_http_variable_value_t, ngx_int_t,
    ngx_str_t, NGX_LOG_ERR,
};
use ngx::http::{HttpModuleMainConf, NgxHttpCoreModule};
use ngx::ngx_log_error;

use crate::decision::Answer;
use crate::headers_in;
use crate::module::{main_conf, main_conf_of};
use crate::ngx_codes::NGX_OK;
use crate::request_ctx::request_ctx;
use crate::variables::{not_found, set_static};
use identity_core::answer_headers::{covers, keep, referenced_name, KeepError};

pub use identity_core::answer_headers::VARIABLE_PREFIX;

/// Records in `MainConf` the header names that variables with our prefix reference;
/// from postconfiguration, when every directive has been parsed.
pub fn collect_referenced(cf: &mut ngx_conf_t) -> Result<(), &'static str> {
    let cmcf = NgxHttpCoreModule::main_conf(cf).ok_or("no http core configuration")?;
    let vars = &cmcf.variables;
    let elts = vars.elts as *const ngx_http_variable_t;
    let mut names: Vec<Vec<u8>> = Vec::new();
    if !elts.is_null() {
        for i in 0..vars.nelts {
            // SAFETY: the core module's indexed variables, an array of nelts entries.
            let v = unsafe { &*elts.add(i) };
            if let Some(name) = referenced_name(v.name.as_bytes()) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    let main = main_conf_of(cf).ok_or("no identity http configuration")?;
    main.answer_headers = names;
    Ok(())
}

/// Keeps the referenced headers of a 2xx answer from the finished subrequest `sr`. A
/// value no header may hold, or values that with the body exceed `max_size`, make the
/// answer a failure (`identity_on_error`).
pub fn take(sr: &ngx_http_request_t, answer: &mut Answer, max_size: usize) {
    if answer.failure.is_some() || !(200..300).contains(&answer.status) {
        return;
    }
    let wanted = &main_conf(sr).answer_headers;
    if wanted.is_empty() {
        return;
    }
    let budget = max_size.saturating_sub(answer.body.len());
    // SAFETY: headers_out.headers is the finished subrequest's live response header list,
    // unchanged while `keep` reads it.
    let headers = unsafe { headers_in::pairs(&sr.headers_out.headers) };
    match keep(wanted, headers, budget) {
        Ok(kept) => answer.answer_headers = kept,
        Err(KeepError::Unsafe { name, why }) => {
            ngx_log_error!(
                NGX_LOG_ERR,
                // SAFETY: sr is live; its connection has a log.
                unsafe { (*sr.connection).log },
                "identity: the user service's header read by \"${}{}\" {why}",
                String::from_utf8_lossy(VARIABLE_PREFIX),
                String::from_utf8_lossy(&name)
            );
            answer.failure =
                Some("a user-service header that $identity_answer_header_* reads is unsafe");
        }
        Err(KeepError::TooLarge) => {
            answer.failure = Some(
                "the user service's body and the headers $identity_answer_header_* reads are larger than identity_max_size",
            );
        }
    }
}

/// Whether a cached 2xx answer kept every name this configuration references; one
/// stored before a reload added a name is not used (the request calls again).
pub fn covered(r: &ngx_http_request_t, answer: &Answer) -> bool {
    !(200..300).contains(&answer.status)
        || covers(&answer.answer_headers, &main_conf(r).answer_headers)
}

/// The get handler of `$identity_answer_header_NAME`: the kept value once an identity
/// was accepted, like `$identity`; not found otherwise.
pub unsafe extern "C" fn get_answer_header(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes a live request, the value slot, and for a prefix variable
    // `data` pointing at the full variable name.
    let (r, v, name) = unsafe { (&*r, &mut *v, &*(data as *const ngx_str_t)) };
    let Some(ctx) = request_ctx(r) else {
        return not_found(v);
    };
    let suffix = name
        .as_bytes()
        .get(VARIABLE_PREFIX.len()..)
        .unwrap_or_default();
    // The kept value lives as long as the request (the answer is not replaced once
    // visible, as for `$identity`): no copy is needed.
    match ctx.answer_header(suffix) {
        Some((data, len)) => {
            set_static(v, data as *mut u8, len);
            NGX_OK
        }
        None => not_found(v),
    }
}
