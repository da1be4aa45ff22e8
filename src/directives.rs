//! Every `identity_*` directive, declared once: its name, the levels it is allowed at, its
//! arguments, its parser, and for a setting its field, merge rule and default.
//!
//! To add a location directive, add one line to `settings` (and its parser in
//! `parsers.rs` when no existing one fits), a test, and a README row. The macro
//! (`declare.rs`) writes the field, the inheritance, the default and the command-table row.

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_str_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_NOARGS,
    NGX_CONF_TAKE1, NGX_CONF_TAKE12, NGX_CONF_TAKE2, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET,
    NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_SRV_CONF, NGX_LOG_EMERG,
};
use ngx::{ngx_conf_log_error, ngx_string};

use crate::cache_entry::{ValidRule, DEFAULT_VALID};
use crate::config::{
    Assertion, CacheSetting, ConfigError, IdentityHeader, KeyDef, MergeError, RequestUri, Require,
    Sealed, ZoneRef,
};
use crate::decision::OnError;
use crate::parsers::{self as p, args, default_key, text};

/// http, server and location.
const ANY: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;
/// http only.
const MAIN: u32 = NGX_HTTP_MAIN_CONF;
/// location only.
const LOC: u32 = NGX_HTTP_LOC_CONF;

identity_directives! {
    merge(cf);
    settings {
        /// `identity_request off | uri`.
        request: RequestUri => "identity_request", ANY, NGX_CONF_TAKE1, p::request,
            inherit = RequestUri::Off;
        /// `identity_key value`: the credential, a complex value.
        key_def: KeyDef => "identity_key", ANY, NGX_CONF_TAKE1, p::key,
            inherit_conf = default_key(cf)?;
        /// `identity_header name value`, repeatable; a level with none inherits the list.
        headers: Vec<IdentityHeader> => "identity_header", ANY, NGX_CONF_TAKE2, p::header,
            inherit = Vec::new();
        /// `identity_pass_client_header name`, repeatable; a level with none inherits the
        /// list. The client's copies go to the identity subrequest only.
        pass_client: Vec<Vec<u8>> => "identity_pass_client_header", ANY, NGX_CONF_TAKE1,
            p::pass_client_header, inherit = Vec::new();
        /// `identity_require value ... [error=401|403] | off`, repeatable; a level with
        /// none inherits the list, `off` (an empty list) clears it.
        require: Vec<Require> => "identity_require", ANY, NGX_CONF_1MORE, p::require,
            inherit = Vec::new();
        /// `identity_strip name`, repeatable; folded into `spoofable` while merging.
        strip: Vec<Vec<u8>> => "identity_strip", ANY, NGX_CONF_TAKE1, p::strip,
            this_level;
        /// `identity_anonymous on | off`.
        anonymous: bool => "identity_anonymous", ANY, NGX_CONF_TAKE1, p::anonymous,
            inherit = false;
        /// `identity_on_error pass | status`.
        on_error: OnError => "identity_on_error", ANY, NGX_CONF_TAKE1, p::on_error,
            inherit = OnError::Respond(503);
        /// `identity_strip_cookie on | off`.
        strip_cookie: bool => "identity_strip_cookie", ANY, NGX_CONF_TAKE1, p::strip_cookie,
            inherit = false;
        /// `identity_max_size size`: the largest user-service body read.
        max_size: usize => "identity_max_size", ANY, NGX_CONF_TAKE1, p::max_size,
            inherit = 8 * 1024;
        /// `identity_cache zone | off`.
        cache: CacheSetting => "identity_cache", ANY, NGX_CONF_TAKE1, p::cache,
            inherit = CacheSetting::Off;
        /// `identity_cache_valid [code ...] time`, repeatable.
        cache_valid: Vec<ValidRule> => "identity_cache_valid", ANY, NGX_CONF_1MORE,
            p::cache_valid, inherit = DEFAULT_VALID.to_vec();
        /// `identity_cache_use_stale time | off`, in seconds (0 = off).
        cache_use_stale: u32 => "identity_cache_use_stale", ANY, NGX_CONF_TAKE1,
            p::cache_use_stale, inherit = 0;
        /// `identity_cache_lock on | off`.
        cache_lock: bool => "identity_cache_lock", ANY, NGX_CONF_TAKE1, p::cache_lock,
            inherit = true;
        /// `identity_cache_lock_timeout time`, in milliseconds.
        cache_lock_timeout_ms: u64 => "identity_cache_lock_timeout", ANY, NGX_CONF_TAKE1,
            p::cache_lock_timeout, inherit = 5000;
        /// `identity_cache_purge zone`: this location is a purge handler for that zone.
        purge: ZoneRef => "identity_cache_purge", LOC, NGX_CONF_TAKE1, p::cache_purge,
            this_level;
        /// `identity_sealed name [max_age=time] | off`.
        sealed: Sealed => "identity_sealed", ANY, NGX_CONF_TAKE12, p::sealed,
            inherit = Sealed::Off;
        /// `identity_assertion header [audience=] [issuer=] [ttl=] [claims=] | off`.
        assertion: Assertion => "identity_assertion", ANY, NGX_CONF_1MORE,
            p::assertion, inherit = Assertion::Off;
        /// `identity_sealed_revoke name`: this location revokes the sealed cookie `name`.
        sealed_revoke: Vec<u8> => "identity_sealed_revoke", LOC, NGX_CONF_TAKE1,
            crate::revoke::revoke_directive, this_level;
        /// `identity_jwks`: this location answers with the assertion keys' JWKS.
        jwks: bool => "identity_jwks", LOC, NGX_CONF_NOARGS, p::jwks, this_level;
    }
    derived {
        /// The compiled `identity_key` (null only before merging).
        key: *mut ngx::ffi::ngx_http_complex_value_t = ptr::null_mut();
        /// `KeyDef::variable` of the merged key.
        key_variable: Option<usize> = None;
        /// The `identity_cache_purge` zone's nginx entry, for `purge.rs` (null: none).
        purge_zone: *mut ngx::ffi::ngx_shm_zone_t = ptr::null_mut();
        /// Client header names removed on every path: this level's `identity_header` and
        /// `identity_strip` names plus every enclosing level's, so an inner level can never
        /// re-open a name an outer level protects.
        spoofable: Vec<Vec<u8>> = Vec::new();
        /// Cookie names `identity_strip_cookie on` removes, read from the key.
        session_cookies: Vec<Vec<u8>> = Vec::new();
        /// Headers the key reads through `$http_NAME` (`header::header_names_in_key`).
        key_headers: Vec<Vec<u8>> = Vec::new();
        /// The user-service question a cache entry of this location answers
        /// (`cache_entry::question`), fixed while merging; empty without a cache.
        question: Vec<u8> = Vec::new();
        /// The zone's keyed hash with `question` already absorbed, made on this
        /// location's first cache lookup in each worker (`KeyHasher::with_question`).
        question_hasher: core::cell::OnceCell<crate::cache_entry::KeyHasher> =
            core::cell::OnceCell::new();
    }
    others {
        "identity_cache_zone", MAIN, NGX_CONF_TAKE1, location_shim!(p::cache_zone),
            NGX_HTTP_LOC_CONF_OFFSET;
        "identity_metrics", LOC, ngx::ffi::NGX_CONF_NOARGS,
            location_shim!(crate::metrics_handler::metrics_directive), NGX_HTTP_LOC_CONF_OFFSET;
        "identity_sealed_keys", MAIN, NGX_CONF_TAKE1, crate::sealed_keys::set_sealed_keys,
            NGX_HTTP_MAIN_CONF_OFFSET;
        "identity_assertion_key", MAIN, NGX_CONF_TAKE1,
            crate::assertion_keys::set_assertion_key, NGX_HTTP_MAIN_CONF_OFFSET;
        "identity_cache_sync", MAIN, ngx::ffi::NGX_CONF_2MORE,
            crate::fleet_conf::set_cache_sync, NGX_HTTP_MAIN_CONF_OFFSET;
    }
}

type SetFn = extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

/// A row of nginx's command table.
const fn command(
    name: ngx_str_t,
    levels: u32,
    args: u32,
    set: SetFn,
    conf_offset: usize,
) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: (levels | args) as ngx_uint_t,
        set: Some(set),
        conf: conf_offset,
        offset: 0,
        post: ptr::null_mut(),
    }
}

/// A location directive's parser: reads the directive's arguments (its own name first)
/// into the conf.
type Parser = fn(&mut ngx_conf_t, &mut IdentityConf, &[ngx_str_t]) -> Result<(), ConfigError>;

/// Turns nginx's directive callback into a call of a safe parser, and its error into
/// an `nginx -t` message naming the directive.
///
/// # Safety
/// `cf` and `conf` are the pointers nginx passes to a directive's `set` callback for a
/// `NGX_HTTP_LOC_CONF_OFFSET` directive of this module.
unsafe fn run_directive(cf: *mut ngx_conf_t, conf: *mut c_void, parse: Parser) -> *mut c_char {
    // SAFETY: nginx passes the live parser state and this module's location conf.
    let (cf_ref, conf) = unsafe { (&mut *cf, &mut *(conf as *mut IdentityConf)) };
    // A copy, so the parser may use cf mutably while reading them.
    // SAFETY: nginx is parsing this directive: cf->args holds its words.
    let words = unsafe { args(cf_ref) }.to_vec();
    let directive = words.first().map(text).unwrap_or_default();
    match parse(cf_ref, conf, &words) {
        Ok(()) => ngx::core::NGX_CONF_OK,
        // nginx has logged why (e.g. an unknown variable).
        Err(ConfigError::ComplexValue) => ngx::core::NGX_CONF_ERROR,
        Err(e) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"{directive}\" {e}");
            ngx::core::NGX_CONF_ERROR
        }
    }
}
