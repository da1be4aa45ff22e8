//! Checks and collections over a whole http block, made in `init_main_conf` while every
//! server's locations are still a plain tree (parsed, not merged): the header names each
//! server protects, and that every `identity_request` URI has a location of its own.

use core::ffi::c_void;

use ngx::ffi::{
    ngx_conf_t, ngx_http_conf_ctx_t, ngx_http_core_loc_conf_t, ngx_http_core_main_conf_t,
    ngx_http_core_module, ngx_http_core_srv_conf_t, ngx_http_location_queue_t, ngx_queue_t,
};

use crate::config::{IdentityConf, RequestUri};
use crate::header::header_names_match;
use crate::module::{module, SrvConf};

/// An `identity_request` URI that no location of a server using it serves.
#[derive(Debug, thiserror::Error)]
#[error(
    "\"identity_request {uri}\": no location serves this URI in a server{{}} that uses it; \
     add one, e.g. \"location = {uri} {{ internal; proxy_pass ...; }}\""
)]
pub struct UnservedRequestUri {
    uri: String,
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
pub unsafe fn collect_protected_names(cf: &mut ngx_conf_t) {
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

pub fn check_request_locations(cf: &mut ngx_conf_t) -> Result<(), UnservedRequestUri> {
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
                return Err(UnservedRequestUri {
                    uri: String::from_utf8_lossy(&uri).into_owned(),
                });
            }
        }
    }
    Ok(())
}
