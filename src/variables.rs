//! `$identity`, `$identity_claim_NAME`, `$identity_status`, `$identity_reason`,
//! `$identity_service_time`, `$identity_escaped_request_uri` and (handled in
//! `answer_headers`) `$identity_answer_header_NAME`.

use ngx::ffi::{
    __BindgenBitfieldUnit, ngx_conf_t, ngx_http_add_variable, ngx_http_request_t,
    ngx_http_variable_value_t, ngx_int_t, ngx_str_t, ngx_uint_t, NGX_HTTP_VAR_NOCACHEABLE,
    NGX_HTTP_VAR_PREFIX,
};
use ngx::ngx_string;

use crate::decision::{IdentityStatus, Reason};
use crate::module::location_conf;
use crate::pool::copy_to_pool;
use crate::request_ctx::request_ctx;

use crate::ngx_codes::{NGX_ERROR, NGX_OK};

pub const CLAIM_PREFIX: &str = "identity_claim_";

type Getter = unsafe extern "C" fn(
    *mut ngx_http_request_t,
    *mut ngx_http_variable_value_t,
    usize,
) -> ngx_int_t;

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// `ngx_http_add_variable` refused a name (it has logged why).
    #[error("cannot add variable ${0}")]
    Refused(String),
    #[error("this build's layout of nginx variable values is not the C compiler's")]
    Layout,
}

/// Adds the variables; called from preconfiguration.
pub fn register(cf: &mut ngx_conf_t) -> Result<(), RegisterError> {
    if !value_flags_match_bindgen() {
        return Err(RegisterError::Layout);
    }
    // All are non-cacheable: they change once the user service has answered.
    let vars: [(ngx_str_t, Getter, u32); 7] = [
        (
            ngx_string!("identity_reason"),
            get_reason,
            NGX_HTTP_VAR_NOCACHEABLE,
        ),
        (
            ngx_string!("identity_service_time"),
            get_service_time,
            NGX_HTTP_VAR_NOCACHEABLE,
        ),
        (
            ngx_string!("identity"),
            get_identity,
            NGX_HTTP_VAR_NOCACHEABLE,
        ),
        (
            ngx_string!("identity_status"),
            get_status,
            NGX_HTTP_VAR_NOCACHEABLE,
        ),
        (
            ngx_string!("identity_claim_"),
            get_claim,
            NGX_HTTP_VAR_NOCACHEABLE | NGX_HTTP_VAR_PREFIX,
        ),
        // Cacheable: it reads the main request's URI as the client sent it, which never
        // changes.
        (
            ngx_string!("identity_escaped_request_uri"),
            get_escaped_request_uri,
            0,
        ),
        (
            ngx_string!("identity_answer_header_"),
            crate::answer_headers::get_answer_header,
            NGX_HTTP_VAR_NOCACHEABLE | NGX_HTTP_VAR_PREFIX,
        ),
    ];
    for (mut name, getter, flags) in vars {
        // SAFETY: cf is the live configuration; nginx copies the name.
        let v = unsafe { ngx_http_add_variable(cf, &mut name, flags as ngx_uint_t) };
        // SAFETY: a non-null result is nginx's variable entry for us to fill.
        let v = unsafe { v.as_mut() }.ok_or_else(|| {
            RegisterError::Refused(String::from_utf8_lossy(name.as_bytes()).into_owned())
        })?;
        v.get_handler = Some(getter);
        v.data = 0;
    }
    Ok(())
}

pub fn set_value(
    r: &ngx_http_request_t,
    v: &mut ngx_http_variable_value_t,
    bytes: &[u8],
) -> ngx_int_t {
    let Ok(copy) = copy_to_pool(r.pool, bytes) else {
        return NGX_ERROR;
    };
    set_static(v, copy.data, copy.len);
    NGX_OK
}

pub(crate) fn set_static(v: &mut ngx_http_variable_value_t, data: *mut u8, len: usize) {
    v._bitfield_1 = value_flags(len, Flags::FOUND);
    v.data = data;
}

pub fn not_found(v: &mut ngx_http_variable_value_t) -> ngx_int_t {
    // Not cached either: the value appears once the user service has answered.
    v._bitfield_1 = value_flags(0, Flags::NOT_FOUND);
    NGX_OK
}

/// The flags of a variable value besides its length (`valid`, `no_cacheable`,
/// `not_found`; `escape` stays 0).
#[derive(Clone, Copy)]
struct Flags {
    valid: bool,
    not_found: bool,
}

impl Flags {
    const FOUND: Flags = Flags {
        valid: true,
        not_found: false,
    };
    const NOT_FOUND: Flags = Flags {
        valid: false,
        not_found: true,
    };
}

/// C's `unsigned len:28; valid:1; no_cacheable:1; not_found:1; escape:1;` as one word,
/// allocated from the lowest bit (the SysV ABI; `register` checks it against bindgen's
/// setters). Those setters write a bit at a time: 28 steps for the length, about 560
/// instructions, on every read of an identity variable. `no_cacheable` is always set:
/// the values change once the user service has answered.
fn value_flags(len: usize, flags: Flags) -> __BindgenBitfieldUnit<[u8; 4]> {
    let word = (len as u32 & LEN_MASK)
        | (flags.valid as u32) << 28
        | 1 << 29
        | (flags.not_found as u32) << 30;
    __BindgenBitfieldUnit::new(word.to_le_bytes())
}

const LEN_MASK: u32 = (1 << 28) - 1;

/// A variable value's length, read as one word (bindgen's getter reads it bit by bit).
fn value_len(v: &ngx_http_variable_value_t) -> usize {
    // SAFETY: __BindgenBitfieldUnit is repr(C) around its storage, here [u8; 4].
    let word: [u8; 4] = unsafe { core::mem::transmute(v._bitfield_1) };
    (u32::from_le_bytes(word) & LEN_MASK) as usize
}

/// The value of indexed variable `index` as a complex value made of that variable alone
/// gives it (`ngx_http_complex_value`): a non-cacheable value is evaluated again, and
/// an absent one, or one nginx failed to evaluate, is empty. `None` only without the
/// request's variable slots.
pub fn read_as_complex_value(r: &mut ngx_http_request_t, index: usize) -> Option<ngx_str_t> {
    if r.variables.is_null() {
        return None;
    }
    // SAFETY: index was given by ngx_http_get_variable_index for this configuration, and
    // r->variables has a slot per indexed variable.
    let slot = unsafe { &mut *r.variables.add(index) };
    if slot.no_cacheable() != 0 {
        slot.set_valid(0);
        slot.set_not_found(0);
    }
    // SAFETY: as above.
    let v = unsafe { ngx::ffi::ngx_http_get_indexed_variable(r, index) };
    // SAFETY: a non-null result is the request's value slot for the variable.
    match unsafe { v.as_ref() } {
        Some(v) if v.not_found() == 0 => Some(ngx_str_t {
            len: value_len(v),
            data: v.data,
        }),
        _ => Some(ngx_str_t::default()),
    }
}

/// Whether `value_flags` packs the word as this build's bindgen setters do.
fn value_flags_match_bindgen() -> bool {
    // SAFETY: an all-zero variable value is valid (a null data pointer, all flags 0).
    let mut expected: ngx_http_variable_value_t = unsafe { core::mem::zeroed() };
    let mut packed = expected;
    for (len, flags) in [(0x0abc_def1, Flags::FOUND), (5, Flags::NOT_FOUND)] {
        expected.set_len(len);
        expected.set_valid(flags.valid as u32);
        expected.set_no_cacheable(1);
        expected.set_not_found(flags.not_found as u32);
        expected.set_escape(0);
        packed._bitfield_1 = value_flags(len as usize, flags);
        if value_len(&packed) != expected.len() as usize
            || value_len(&expected) != len as usize
            || (packed.len(), packed.valid(), packed.no_cacheable())
                != (expected.len(), expected.valid(), expected.no_cacheable())
            || (packed.not_found(), packed.escape()) != (expected.not_found(), expected.escape())
        {
            return false;
        }
    }
    true
}

unsafe extern "C" fn get_identity(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes a live request and the value slot to fill.
    let (r, v) = unsafe { (&*r, &mut *v) };
    match request_ctx(r).and_then(|ctx| ctx.identity()) {
        // The body lives as long as the request; no copy is needed.
        Some((data, len)) => {
            set_static(v, data as *mut u8, len);
            NGX_OK
        }
        None => not_found(v),
    }
}

unsafe extern "C" fn get_status(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes a live request and the value slot to fill.
    let (r, v) = unsafe { (&*r, &mut *v) };
    let status = match request_ctx(r) {
        Some(ctx) => ctx.status.get(),
        // SAFETY: r->main is the live main request.
        None if location_conf(unsafe { &*r.main }).enabled().is_none() => {
            Some(IdentityStatus::Bypass)
        }
        None => None,
    };
    match status {
        Some(s) => {
            let text = s.as_str();
            set_static(v, text.as_ptr() as *mut u8, text.len());
            NGX_OK
        }
        None => not_found(v),
    }
}

/// `$identity_reason`: empty when an identity was accepted or nothing was decided.
unsafe extern "C" fn get_reason(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes a live request and the value slot to fill.
    let (r, v) = unsafe { (&*r, &mut *v) };
    let text = request_ctx(r)
        .and_then(|ctx| ctx.reason.get())
        .map_or("", Reason::as_str);
    set_static(v, text.as_ptr() as *mut u8, text.len());
    NGX_OK
}

/// `$identity_service_time`: the user-service call's duration in seconds, to the
/// millisecond (`0.012`), or `-` when this request made no call.
unsafe extern "C" fn get_service_time(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes a live request and the value slot to fill.
    let (r, v) = unsafe { (&*r, &mut *v) };
    match request_ctx(r).and_then(|ctx| ctx.service_ms.get()) {
        Some(ms) => set_value(r, v, format!("{}.{:03}", ms / 1000, ms % 1000).as_bytes()),
        None => {
            set_static(v, b"-".as_ptr() as *mut u8, 1);
            NGX_OK
        }
    }
}

unsafe extern "C" fn get_claim(
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
    let claim = name
        .as_bytes()
        .get(CLAIM_PREFIX.len()..)
        .unwrap_or_default();
    let Ok(claim) = core::str::from_utf8(claim) else {
        return not_found(v);
    };
    match ctx.claim(claim) {
        // The body lives as long as the request (as `$identity`'s): no copy is needed.
        Ok(Some(crate::request_ctx::ClaimText::InBody(data, len))) => {
            set_static(v, data as *mut u8, len);
            NGX_OK
        }
        Ok(Some(crate::request_ctx::ClaimText::Owned(text))) => set_value(r, v, &text),
        Ok(None) | Err(_) => not_found(v),
    }
}

/// The names NAME for which the configuration defines a variable called exactly
/// `PREFIX` + NAME (a `map`, a `set`) where PREFIX is one of this module's prefix
/// variables (`identity_claim_`, `identity_answer_header_`): nginx gives such a name that
/// variable, not the prefix variable, so an `identity_header` of it is evaluated as
/// written. Read at postconfiguration, while nginx still holds the variables' names.
pub fn shadowed(cmcf: &ngx::ffi::ngx_http_core_main_conf_t, prefix: &[u8]) -> Vec<Vec<u8>> {
    // SAFETY: until ngx_http_variables_init_vars (after every postconfiguration), this is
    // the live table of the configuration's variable names.
    let Some(keys) = (unsafe { cmcf.variables_keys.as_ref() }) else {
        return Vec::new();
    };
    // SAFETY: keys.keys is an array of ngx_hash_key_t.
    let keys: &[ngx::ffi::ngx_hash_key_t] = unsafe { keys.keys.as_slice() };
    keys.iter()
        .filter_map(|k| k.key.as_bytes().strip_prefix(prefix))
        .map(|name| name.to_ascii_lowercase())
        .collect()
}

/// The main request's `$request_uri` (as the client sent it, even when read inside the
/// identity subrequest or after an internal redirect) escaped as a query value
/// (`uri::escape_query_value`), for `?request_uri=$identity_escaped_request_uri`.
unsafe extern "C" fn get_escaped_request_uri(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes a live request and the value slot to fill; r->main is the
    // live main request.
    let (r, v, main) = unsafe { (&*r, &mut *v, &*(*r).main) };
    let escaped = identity_core::uri::escape_query_value(main.unparsed_uri.as_bytes());
    set_value(r, v, escaped.as_bytes())
}
