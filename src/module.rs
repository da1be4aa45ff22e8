//! The module's definition for nginx: its directives, its configuration callbacks and
//! the `ngx_modules` table a dynamic module exports.

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::ffi::{
    ngx_array_push, ngx_command_t, ngx_conf_t, ngx_http_conf_ctx_t, ngx_http_core_loc_conf_t,
    ngx_http_core_main_conf_t, ngx_http_core_module, ngx_http_core_srv_conf_t, ngx_http_handler_pt,
    ngx_http_location_queue_t, ngx_http_module_t, ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
    ngx_http_phases_NGX_HTTP_POST_READ_PHASE, ngx_http_phases_NGX_HTTP_PRECONTENT_PHASE, ngx_int_t,
    ngx_module_t, ngx_queue_t, ngx_str_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_TAKE1,
    NGX_CONF_TAKE12, NGX_CONF_TAKE2, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET,
    NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_MODULE, NGX_HTTP_SRV_CONF,
    NGX_LOG_EMERG,
};
use ngx::{ngx_conf_log_error, ngx_string};

use crate::config::{self, IdentityConf, RequestUri};
use crate::header::header_names_match;
use crate::ngx_codes::{NGX_ERROR, NGX_OK};
use crate::{handler, subrequest, variables};

const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

type SetFn = extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

/// A directive allowed at `levels` whose handler gets the conf at `conf_offset`.
const fn directive(
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

/// A directive of http, server and location levels, on this module's location conf.
const fn command(name: ngx_str_t, args: u32, set: SetFn) -> ngx_command_t {
    directive(name, ANY_LEVEL, args, set, NGX_HTTP_LOC_CONF_OFFSET)
}

static mut COMMANDS: [ngx_command_t; 18] = [
    command(
        ngx_string!("identity_request"),
        NGX_CONF_TAKE1,
        config::set_identity_request,
    ),
    command(
        ngx_string!("identity_key"),
        NGX_CONF_TAKE1,
        config::set_identity_key,
    ),
    command(
        ngx_string!("identity_header"),
        NGX_CONF_TAKE2,
        config::set_identity_header,
    ),
    command(
        ngx_string!("identity_strip"),
        NGX_CONF_TAKE1,
        config::set_identity_strip,
    ),
    command(
        ngx_string!("identity_anonymous"),
        NGX_CONF_TAKE1,
        config::set_identity_anonymous,
    ),
    command(
        ngx_string!("identity_on_error"),
        NGX_CONF_TAKE1,
        config::set_identity_on_error,
    ),
    command(
        ngx_string!("identity_strip_cookie"),
        NGX_CONF_TAKE1,
        config::set_identity_strip_cookie,
    ),
    command(
        ngx_string!("identity_max_size"),
        NGX_CONF_TAKE1,
        config::set_identity_max_size,
    ),
    directive(
        ngx_string!("identity_cache_zone"),
        NGX_HTTP_MAIN_CONF,
        NGX_CONF_TAKE1,
        config::set_identity_cache_zone,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("identity_cache"),
        NGX_CONF_TAKE1,
        config::set_identity_cache,
    ),
    command(
        ngx_string!("identity_cache_valid"),
        NGX_CONF_1MORE,
        config::set_identity_cache_valid,
    ),
    command(
        ngx_string!("identity_cache_use_stale"),
        NGX_CONF_TAKE1,
        config::set_identity_cache_use_stale,
    ),
    command(
        ngx_string!("identity_cache_lock"),
        NGX_CONF_TAKE1,
        config::set_identity_cache_lock,
    ),
    command(
        ngx_string!("identity_cache_lock_timeout"),
        NGX_CONF_TAKE1,
        config::set_identity_cache_lock_timeout,
    ),
    directive(
        ngx_string!("identity_cache_purge"),
        NGX_HTTP_LOC_CONF,
        NGX_CONF_TAKE1,
        config::set_identity_cache_purge,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    directive(
        ngx_string!("identity_sealed_keys"),
        NGX_HTTP_MAIN_CONF,
        NGX_CONF_TAKE1,
        config::set_identity_sealed_keys,
        NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    command(
        ngx_string!("identity_sealed"),
        NGX_CONF_TAKE12,
        config::set_identity_sealed,
    ),
    ngx_command_t::empty(),
];

/// http-level state: the sealed-cookie key ring. Its `init_main_conf` is also where
/// every location is visible for the `identity_request` check.
#[derive(Default)]
pub struct MainConf {
    pub keyring: Option<crate::sealed::KeyRing>,
}

/// Server-level state: every header name the module protects anywhere in the server
/// (http level, server level and each of its locations), removed from the main request
/// in the post-read phase so no location, redirect or subrequest of the server sees a
/// client's copy.
#[derive(Default)]
pub struct SrvConf {
    pub protected: Vec<Vec<u8>>,
}

/// This module's configuration for the server `r` is in.
pub fn srv_conf<'a>(r: &ngx::ffi::ngx_http_request_t) -> &'a SrvConf {
    // SAFETY: every request has its server's srv_conf array with this module's slot.
    unsafe { &*(*r.srv_conf.add(module().ctx_index) as *const SrvConf) }
}

/// This module's http-level configuration, for a request.
pub fn main_conf<'a>(r: &ngx::ffi::ngx_http_request_t) -> &'a MainConf {
    // SAFETY: every request has its http block's main conf array with this module's slot.
    unsafe { &*(*r.main_conf.add(module().ctx_index) as *const MainConf) }
}

/// This module's http-level configuration, while parsing.
pub fn main_conf_of<'a>(cf: &ngx_conf_t) -> Option<&'a mut MainConf> {
    // SAFETY: inside http{}, cf->ctx is an ngx_http_conf_ctx_t whose main_conf array has
    // this module's slot, created by create_main_conf.
    unsafe {
        let ctx = cf.ctx as *mut ngx_http_conf_ctx_t;
        (*(*ctx).main_conf.add(module().ctx_index) as *mut MainConf).as_mut()
    }
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
    commands: ptr::addr_of_mut!(COMMANDS) as *mut ngx_command_t,
    type_: NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};

/// This module's descriptor.
pub fn module() -> &'static ngx_module_t {
    // SAFETY: nginx writes the module's indices once at load time, before any request.
    unsafe { &*ptr::addr_of!(ngx_http_identity_module) }
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
            &mut *(prev as *mut IdentityConf),
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
        Err(_) => NGX_ERROR,
    }
}

extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx passes the live configuration; its ctx is the http block's.
    let cmcf = unsafe {
        let ctx = (*cf).ctx as *mut ngx_http_conf_ctx_t;
        &mut *(*(*ctx).main_conf.add(ngx_http_core_module.ctx_index)
            as *mut ngx_http_core_main_conf_t)
    };
    let handlers: [(u32, ngx_http_handler_pt); 3] = [
        // Post-read runs once, for the main request only, before any location is chosen.
        (
            ngx_http_phases_NGX_HTTP_POST_READ_PHASE,
            Some(handler::post_read_handler),
        ),
        (
            ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
            Some(handler::access_handler),
        ),
        // Subrequests skip the access phase but run precontent.
        (
            ngx_http_phases_NGX_HTTP_PRECONTENT_PHASE,
            Some(handler::precontent_handler),
        ),
    ];
    for (phase, h) in handlers {
        let phase = &mut cmcf.phases[phase as usize].handlers;
        // SAFETY: a phase's handler array is a live ngx_array_t of handler pointers.
        let slot = unsafe { ngx_array_push(phase) } as *mut ngx_http_handler_pt;
        if slot.is_null() {
            return -1;
        }
        // SAFETY: slot is a fresh element of that array.
        unsafe { *slot = h };
    }
    subrequest::install_body_filter();
    0
}

/// Before merging, every server's location tree is still a plain queue: check there that
/// each `identity_request` URI is served by a location of its own, so a typo cannot
/// send identity lookups to the site's catch-all `location /` (which may answer 200).
extern "C" fn init_main_conf(cf: *mut ngx_conf_t, _conf: *mut c_void) -> *mut c_char {
    // SAFETY: nginx passes the live configuration of the http block.
    let cf_ref = unsafe { &mut *cf };
    // SAFETY: as above.
    unsafe { collect_protected_names(cf_ref) };
    match check_request_locations(cf_ref) {
        Ok(()) => ngx::core::NGX_CONF_OK,
        Err(reason) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{reason}");
            ngx::core::NGX_CONF_ERROR
        }
    }
}

/// # Safety
/// `loc_conf` is an nginx `loc_conf` array of a fully parsed http block.
unsafe fn identity_conf<'a>(loc_conf: *mut *mut c_void) -> &'a IdentityConf {
    // SAFETY: every level has this module's conf, created by create_loc_conf.
    unsafe { &*(*loc_conf.add(module().ctx_index) as *const IdentityConf) }
}

/// # Safety
/// `loc_conf` is an nginx `loc_conf` array of a fully parsed http block.
unsafe fn core_conf<'a>(loc_conf: *mut *mut c_void) -> &'a ngx_http_core_loc_conf_t {
    // SAFETY: every level has the core module's location conf.
    unsafe { &*(*loc_conf.add(ngx_http_core_module.ctx_index) as *const ngx_http_core_loc_conf_t) }
}

/// The locations directly inside `clcf`.
///
/// # Safety
/// `clcf` belongs to a parsed, not yet merged http block.
unsafe fn children<'a>(clcf: &ngx_http_core_loc_conf_t) -> Vec<&'a ngx_http_core_loc_conf_t> {
    let mut out = Vec::new();
    let head: *mut ngx_queue_t = clcf.locations;
    if head.is_null() {
        return out;
    }
    // SAFETY: clcf->locations is a queue of ngx_http_location_queue_t, first field queue.
    unsafe {
        let mut q = (*head).next;
        while q != head {
            let lq = q as *mut ngx_http_location_queue_t;
            let conf = if (*lq).exact.is_null() {
                (*lq).inclusive
            } else {
                (*lq).exact
            };
            if !conf.is_null() {
                out.push(&*conf);
            }
            q = (*q).next;
        }
    }
    out
}

/// # Safety
/// As for `children`.
unsafe fn collect_needs(
    clcf: &ngx_http_core_loc_conf_t,
    inherited: Option<&RequestUri>,
    all: &mut Vec<&ngx_http_core_loc_conf_t>,
    needs: &mut Vec<Vec<u8>>,
) {
    // SAFETY: per the caller.
    for child in unsafe { children(clcf) } {
        all.push(child);
        // SAFETY: child is a parsed location.
        let own = unsafe { identity_conf(child.loc_conf) }.request.as_ref();
        let effective = own.or(inherited);
        if let Some(RequestUri::Uri(uri)) = effective {
            if child.noname() == 0 || own.is_some() {
                needs.push(uri.as_bytes().to_vec());
            }
        }
        // SAFETY: per the caller.
        unsafe { collect_needs(child, effective, all, needs) };
    }
}

/// # Safety
/// As for `children`.
unsafe fn collect_names(clcf: &ngx_http_core_loc_conf_t, names: &mut Vec<Vec<u8>>) {
    // SAFETY: per the caller.
    for child in unsafe { children(clcf) } {
        // SAFETY: child is a parsed location.
        add_names(unsafe { identity_conf(child.loc_conf) }, names);
        // SAFETY: per the caller.
        unsafe { collect_names(child, names) };
    }
}

fn add_names(conf: &IdentityConf, names: &mut Vec<Vec<u8>>) {
    for name in conf.own_protected_names() {
        if !names.iter().any(|n| header_names_match(n, name)) {
            names.push(name.clone());
        }
    }
}

/// Fills each server's `SrvConf::protected` with the names the module protects at the
/// http level, the server level and in any location of the server.
///
/// # Safety
/// `cf` is the http block's configuration during `init_main_conf` (parsed, not merged).
unsafe fn collect_protected_names(cf: &mut ngx_conf_t) {
    // SAFETY: per the caller.
    let http_ctx = unsafe { &*(cf.ctx as *const ngx_http_conf_ctx_t) };
    // SAFETY: the core main conf and its servers array are complete after parsing.
    let servers: &[*mut ngx_http_core_srv_conf_t] = unsafe {
        let cmcf = &*(*http_ctx.main_conf.add(ngx_http_core_module.ctx_index)
            as *const ngx_http_core_main_conf_t);
        cmcf.servers.as_slice()
    };
    for &cscf in servers {
        let mut names = Vec::new();
        // SAFETY: the http level's loc_conf array is complete.
        add_names(unsafe { identity_conf(http_ctx.loc_conf) }, &mut names);
        // SAFETY: each server conf has a ctx with its own srv_conf and loc_conf arrays,
        // with this module's slots created by create_srv_conf and create_loc_conf.
        unsafe {
            let ctx = &*(*cscf).ctx;
            add_names(identity_conf(ctx.loc_conf), &mut names);
            collect_names(core_conf(ctx.loc_conf), &mut names);
            (*(*ctx.srv_conf.add(module().ctx_index) as *mut SrvConf)).protected = names;
        }
    }
}

fn served_by_own_location(uri: &[u8], locations: &[&ngx_http_core_loc_conf_t]) -> bool {
    locations.iter().any(|l| {
        let name = l.name.as_bytes();
        if l.named() != 0 || l.noname() != 0 || !l.regex.is_null() {
            return false;
        }
        if l.exact_match() != 0 {
            return name == uri;
        }
        name != b"/" && uri.starts_with(name)
    })
}

fn check_request_locations(cf: &mut ngx_conf_t) -> Result<(), String> {
    // SAFETY: cf->ctx is the http block's ngx_http_conf_ctx_t during init_main_conf.
    let http_ctx = unsafe { &*(cf.ctx as *const ngx_http_conf_ctx_t) };
    // SAFETY: as above.
    let http_level = unsafe { identity_conf(http_ctx.loc_conf) }.request.clone();
    // SAFETY: the core main conf and its servers array are complete after parsing.
    let servers: &[*mut ngx_http_core_srv_conf_t] = unsafe {
        let cmcf = &*(*http_ctx.main_conf.add(ngx_http_core_module.ctx_index)
            as *const ngx_http_core_main_conf_t);
        cmcf.servers.as_slice()
    };
    for &cscf in servers {
        // SAFETY: each server conf has a ctx with its own loc_conf array.
        let srv_loc_conf = unsafe { (*(*cscf).ctx).loc_conf };
        // SAFETY: as above.
        let (srv_identity, srv_core) =
            unsafe { (identity_conf(srv_loc_conf), core_conf(srv_loc_conf)) };
        let inherited = srv_identity.request.as_ref().or(http_level.as_ref());
        let mut all = Vec::new();
        let mut needs = Vec::new();
        if let Some(RequestUri::Uri(uri)) = inherited {
            needs.push(uri.as_bytes().to_vec());
        }
        // SAFETY: the server's location queue is intact until locations are initialised.
        unsafe { collect_needs(srv_core, inherited, &mut all, &mut needs) };
        for uri in needs {
            if !served_by_own_location(&uri, &all) {
                return Err(format!(
                    "\"identity_request {uri}\": no location serves this URI in a server{{}} \
                     that uses it; add one, e.g. \"location = {uri} {{ internal; proxy_pass ...; }}\"",
                    uri = String::from_utf8_lossy(&uri)
                ));
            }
        }
    }
    Ok(())
}

/// This module's configuration for the location `r` is in.
pub fn location_conf<'a>(r: &ngx::ffi::ngx_http_request_t) -> &'a IdentityConf {
    // SAFETY: every location has this module's merged conf at its ctx index.
    unsafe { &*(*r.loc_conf.add(module().ctx_index) as *const IdentityConf) }
}
