//! The module's definition for nginx: its configuration callbacks, the accessors of
//! its configurations, and the `ngx_modules` table a dynamic module exports.

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::ffi::{
    ngx_array_push, ngx_command_t, ngx_conf_t, ngx_http_handler_pt, ngx_http_module_t,
    ngx_http_phases_NGX_HTTP_ACCESS_PHASE, ngx_http_phases_NGX_HTTP_POST_READ_PHASE,
    ngx_http_phases_NGX_HTTP_PRECONTENT_PHASE, ngx_int_t, ngx_module_t, NGX_HTTP_MODULE,
    NGX_LOG_EMERG,
};
use ngx::http::{
    HttpModule, HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf, NgxHttpCoreModule,
};
use ngx::ngx_conf_log_error;

use crate::config::IdentityConf;
use crate::ngx_codes::{NGX_ERROR, NGX_OK};
use crate::{answer_headers, handler, protected_names, subrequest, variables};

/// http-level state: the sealed-cookie key ring. Its `init_main_conf` is also where
/// every location is visible for the `identity_request` check.
#[derive(Default)]
pub struct MainConf {
    pub keyring: Option<crate::sealed::KeyRing>,
    /// `identity_assertion_key`: the first signs, all are published.
    pub assertion_keys: Option<crate::assertion_key::KeySet>,
    /// The response headers `$identity_answer_header_NAME` variables reference
    /// (normalised names), collected at postconfiguration.
    pub answer_headers: Vec<Vec<u8>>,
    /// `identity_cache_sync`: one Redis link per synced zone.
    pub syncs: Vec<crate::fleet_conf::SyncConf>,
    /// The `secret=` of the synced zones (the same for all; `Some(None)`: none given).
    pub fleet_secret: Option<Option<Vec<u8>>>,
    /// The fleet's digests and message tags, set at postconfiguration when anything
    /// syncs or revokes.
    pub fleet_key: Option<identity_core::fleet::FleetKey>,
    /// The digest key the revocation table's entries may still be made with (a reload
    /// changed `secret=`): set by the table's `init_zone`.
    pub previous_fleet_key: Option<identity_core::fleet::FleetKey>,
    /// The revoked sealed cookies' zone (`identity_cache_sync`, `identity_sealed_revoke`).
    pub revocations: Option<crate::config::ZoneRef>,
    /// Where `identity_sealed_revoke` appears (file:line), checked against
    /// `identity_sealed_keys` once the http block is read.
    pub revoke_places: Vec<String>,
    /// The indexed variables that read request headers, as found at postconfiguration
    /// (`header_shortcuts::flush_header_variables`).
    pub header_variables: crate::header_shortcuts::HeaderVariables,
    /// `variables::shadowed` claim names, found at postconfiguration.
    pub shadowed_claims: Vec<Vec<u8>>,
    /// `variables::shadowed` answer header names, found at postconfiguration.
    pub shadowed_answer_headers: Vec<Vec<u8>>,
}

/// Server-level state: every header name the module protects anywhere in the server
/// (http level, server level and each of its locations), removed from the main request
/// in the post-read phase so no location, redirect or subrequest of the server sees a
/// client's copy.
#[derive(Default)]
pub struct SrvConf {
    pub protected: Vec<Vec<u8>>,
    /// Every `identity_pass_client_header` name of the server: the client's copies are
    /// kept (`client_headers`) before the post-read strip.
    pub pass_client: Vec<Vec<u8>>,
}

/// This module, for the `ngx` crate's typed access to its configurations
/// (`IdentityModule::main_conf(cf)`, `::server_conf(r)`, `::location_conf(...)`).
pub struct IdentityModule;

impl HttpModule for IdentityModule {
    fn module() -> &'static ngx_module_t {
        module()
    }
}

// SAFETY: create_main_conf allocates a MainConf in every http block's main_conf slot.
unsafe impl HttpModuleMainConf for IdentityModule {
    type MainConf = MainConf;
}

// SAFETY: create_srv_conf allocates a SrvConf in every srv_conf slot.
unsafe impl HttpModuleServerConf for IdentityModule {
    type ServerConf = SrvConf;
}

// SAFETY: create_loc_conf allocates an IdentityConf in every loc_conf slot.
unsafe impl HttpModuleLocationConf for IdentityModule {
    type LocationConf = IdentityConf;
}

/// What a request reads if a slot were ever empty (nginx always fills them).
static NO_SRV_CONF: SrvConf = SrvConf {
    protected: Vec::new(),
    pass_client: Vec::new(),
};
static NO_MAIN_CONF: MainConf = MainConf {
    keyring: None,
    assertion_keys: None,
    answer_headers: Vec::new(),
    syncs: Vec::new(),
    fleet_secret: None,
    fleet_key: None,
    previous_fleet_key: None,
    revocations: None,
    revoke_places: Vec::new(),
    header_variables: crate::header_shortcuts::HeaderVariables::NONE,
    shadowed_claims: Vec::new(),
    shadowed_answer_headers: Vec::new(),
};

/// This module's configuration for the server `r` is in.
pub fn srv_conf<'a>(r: &ngx::ffi::ngx_http_request_t) -> &'a SrvConf {
    IdentityModule::server_conf(r).unwrap_or(&NO_SRV_CONF)
}

/// This module's http-level configuration, for a request.
pub fn main_conf<'a>(r: &ngx::ffi::ngx_http_request_t) -> &'a MainConf {
    IdentityModule::main_conf(r).unwrap_or(&NO_MAIN_CONF)
}

/// This module's http-level configuration, outside a request (the fleet's link).
pub fn cycle_main_conf<'a>() -> Option<&'a MainConf> {
    // SAFETY: ngx_cycle is the worker's live cycle, set before init_process.
    let cycle = unsafe { ngx::ffi::ngx_cycle.as_ref() }?;
    IdentityModule::main_conf(cycle)
}

/// This module's http-level configuration, while parsing inside http{}.
pub fn main_conf_of<'a>(cf: &ngx_conf_t) -> Option<&'a mut MainConf> {
    IdentityModule::main_conf_mut(cf)
}

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(preconfiguration),
    postconfiguration: Some(postconfiguration),
    create_main_conf: Some(create_main_conf),
    init_main_conf: Some(init_main_conf),
    create_srv_conf: Some(create_srv_conf),
    merge_srv_conf: None,
    create_loc_conf: Some(create_loc_conf),
    merge_loc_conf: Some(merge_loc_conf),
};

ngx::ngx_modules!(ngx_http_identity_module);

#[used]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_identity_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(MODULE_CTX) as _,
    commands: ptr::addr_of_mut!(crate::directives::COMMANDS) as *mut ngx_command_t,
    type_: NGX_HTTP_MODULE as _,
    init_process: Some(crate::fleet_link::init_process),
    ..ngx_module_t::default()
};

/// This module's descriptor.
pub fn module() -> &'static ngx_module_t {
    // SAFETY: nginx writes the module's indices once at load time, before any request.
    unsafe { &*ptr::addr_of!(ngx_http_identity_module) }
}

/// Makes sure the module's own shared zone `name` (one no `identity_cache_zone` can have)
/// exists with `size` bytes and `init` as its init callback; nginx's entry for it.
pub fn add_module_zone(
    cf: &mut ngx_conf_t,
    name: &'static str,
    size: usize,
    init: ngx::ffi::ngx_shm_zone_init_pt,
) -> Option<*mut ngx::ffi::ngx_shm_zone_t> {
    let mut name = ngx::ffi::ngx_str_t {
        len: name.len(),
        data: name.as_ptr() as *mut u8,
    };
    // SAFETY: cf is live; the tag is this module; nginx keeps only the pointer of name,
    // which is a 'static string.
    let shm = unsafe {
        ngx::ffi::ngx_shared_memory_add(cf, &mut name, size, module() as *const _ as *mut c_void)
    };
    // SAFETY: a non-null result is nginx's zone entry.
    let zone = unsafe { shm.as_mut() }?;
    zone.init = init;
    Some(shm)
}

/// Allocates `value` in nginx's pool `pool` with a cleanup that drops it with the pool.
pub fn allocate_in_pool<T>(pool: *mut ngx::ffi::ngx_pool_t, value: T) -> *mut c_void {
    // SAFETY: pool is a live nginx pool; a cleanup entry with no data of its own.
    let cln = unsafe { ngx::ffi::ngx_pool_cleanup_add(pool, 0) };
    // SAFETY: pool is live.
    let p = unsafe { ngx::ffi::ngx_palloc(pool, size_of::<T>()) } as *mut T;
    if cln.is_null() || p.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: p is a fresh allocation for one T (nginx aligns to the pointer size, which
    // covers every T this module allocates); cln is a fresh cleanup entry.
    unsafe {
        ptr::write(p, value);
        (*cln).handler = Some(drop_value::<T>);
        (*cln).data = p as *mut c_void;
    }
    p as *mut c_void
}

unsafe extern "C" fn drop_value<T>(data: *mut c_void) {
    // SAFETY: data is the T written by allocate_in_pool; the pool runs a cleanup once.
    unsafe { ptr::drop_in_place(data as *mut T) };
}

extern "C" fn create_main_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    // SAFETY: nginx passes the live configuration.
    allocate_in_pool(unsafe { (*cf).pool }, MainConf::default())
}

extern "C" fn create_srv_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    // SAFETY: nginx passes the live configuration.
    allocate_in_pool(unsafe { (*cf).pool }, SrvConf::default())
}

extern "C" fn create_loc_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    // SAFETY: nginx passes the live configuration.
    allocate_in_pool(unsafe { (*cf).pool }, IdentityConf::default())
}

extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    prev: *mut c_void,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes two of this module's location confs, parent then child.
    let (cf_ref, prev, conf) = unsafe {
        (
            &mut *cf,
            &*(prev as *const IdentityConf),
            &mut *(conf as *mut IdentityConf),
        )
    };
    match conf.merge(cf_ref, prev) {
        Ok(()) => ngx::core::NGX_CONF_OK,
        Err(reason) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{reason}");
            ngx::core::NGX_CONF_ERROR
        }
    }
}

extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx passes the live configuration.
    match variables::register(unsafe { &mut *cf }) {
        Ok(()) => NGX_OK,
        // nginx has said why.
        Err(variables::RegisterError::Refused(_)) => NGX_ERROR,
        Err(e @ variables::RegisterError::Layout) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "identity: {e}");
            NGX_ERROR
        }
    }
}

extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx passes the live configuration of the http block.
    let Some(cmcf) = NgxHttpCoreModule::main_conf_mut(unsafe { &*cf }) else {
        return NGX_ERROR;
    };
    let handlers: [(u32, ngx_http_handler_pt, Place); 4] = [
        // Post-read runs once, for the main request only, before any location is chosen.
        (
            ngx_http_phases_NGX_HTTP_POST_READ_PHASE,
            Some(handler::post_read_handler),
            Place::First,
        ),
        // nginx runs a phase's handlers from the end of the list backwards. The spoofed
        // headers go first in the access phase, before allow/deny and auth_basic...
        (
            ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
            Some(handler::access_strip_handler),
            Place::First,
        ),
        // ...and the exchange last, after them (and after auth_request), whatever the
        // order of the load_module lines: a client `deny` refuses never reaches the user
        // service, and the statuses under `satisfy` are those of nginx's own modules.
        (
            ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
            Some(handler::access_handler),
            Place::Last,
        ),
        // Subrequests skip the access phase but run precontent.
        (
            ngx_http_phases_NGX_HTTP_PRECONTENT_PHASE,
            Some(handler::precontent_handler),
            Place::First,
        ),
    ];
    for (phase, h, place) in handlers {
        let phase = &mut cmcf.phases[phase as usize].handlers;
        // SAFETY: a phase's handler array is a live ngx_array_t of handler pointers.
        let slot = unsafe { ngx_array_push(phase) } as *mut ngx_http_handler_pt;
        if slot.is_null() {
            return NGX_ERROR;
        }
        // SAFETY: slot is a fresh element of that array.
        unsafe { *slot = h };
        if place == Place::Last {
            let elts = phase.elts as *mut ngx_http_handler_pt;
            // SAFETY: the array holds nelts handler pointers (slot is the last); moving
            // them up by one within it and writing index 0 keeps every pointer.
            unsafe {
                ptr::copy(elts, elts.add(1), phase.nelts - 1);
                *elts = h;
            }
        }
    }
    subrequest::install_body_filter();
    // SAFETY: nginx passes the live configuration of the http block.
    if let Err(reason) = crate::fleet_conf::resolve(unsafe { &mut *cf }) {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{reason}");
        return NGX_ERROR;
    }
    // SAFETY: nginx passes the live configuration of the http block.
    if let Err(reason) = answer_headers::collect_referenced(unsafe { &mut *cf }) {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "identity: {reason}");
        return NGX_ERROR;
    }
    // SAFETY: nginx passes the live configuration of the http block.
    let cf = unsafe { &*cf };
    if let (Some(core), Some(main)) = (NgxHttpCoreModule::main_conf(cf), main_conf_of(cf)) {
        main.header_variables = crate::header_shortcuts::HeaderVariables::list(core);
        main.shadowed_claims = variables::shadowed(core, variables::CLAIM_PREFIX.as_bytes());
        main.shadowed_answer_headers = variables::shadowed(core, answer_headers::VARIABLE_PREFIX);
    }
    NGX_OK
}

/// Where a phase handler goes in its phase's run order.
#[derive(PartialEq, Eq)]
enum Place {
    /// Appended: nginx runs it before the handlers other modules registered earlier.
    First,
    /// Put at index 0: nginx runs it after all of them.
    Last,
}

/// Before merging, every server's location tree is still a plain queue: check there that
/// each `identity_request` URI is served by a location of its own, so a typo cannot
/// send identity lookups to the site's catch-all `location /` (which may answer 200).
extern "C" fn init_main_conf(cf: *mut ngx_conf_t, _conf: *mut c_void) -> *mut c_char {
    // SAFETY: nginx passes the live configuration of the http block.
    let cf_ref = unsafe { &mut *cf };
    // SAFETY: as above.
    unsafe { protected_names::collect_protected_names(cf_ref) };
    match protected_names::check_request_locations(cf_ref) {
        Ok(()) => ngx::core::NGX_CONF_OK,
        Err(reason) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{reason}");
            ngx::core::NGX_CONF_ERROR
        }
    }
}

/// This module's configuration for the location `r` is in.
pub fn location_conf<'a>(r: &ngx::ffi::ngx_http_request_t) -> &'a IdentityConf {
    // SAFETY: every location has this module's merged conf at its ctx index (nginx fills
    // every module's slot before a request can reach a phase handler).
    unsafe { &*(*r.loc_conf.add(module().ctx_index) as *const IdentityConf) }
}
