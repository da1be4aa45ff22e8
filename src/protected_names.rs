//! Checks and collections over a whole http block, made in `init_main_conf` while every
//! server's locations are still a plain tree (parsed, not merged): the header names each
//! server protects, and that every `identity_request` URI has a location of its own.

use core::ffi::c_void;

use ngx::ffi::{
    ngx_conf_t, ngx_http_core_loc_conf_t, ngx_http_core_srv_conf_t, ngx_http_location_queue_t,
    ngx_queue_t,
};
use ngx::http::{
    HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf, NgxHttpCoreModule,
};

use crate::config::{IdentityConf, RequestUri};
use crate::header::header_names_match;
use crate::module::{module, IdentityModule};

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

/// The names a server protects, and those of them it passes to the user service.
#[derive(Default)]
struct ServerNames {
    protected: Vec<Vec<u8>>,
    passed: Vec<Vec<u8>>,
}

/// # Safety
/// As for `children`.
unsafe fn collect_names(clcf: &ngx_http_core_loc_conf_t, names: &mut ServerNames) {
    // SAFETY: per the caller.
    for child in unsafe { children(clcf) } {
        // SAFETY: child is a parsed location.
        add_names(unsafe { identity_conf(child.loc_conf) }, names);
        // SAFETY: per the caller.
        unsafe { collect_names(child, names) };
    }
}

fn add_names(conf: &IdentityConf, names: &mut ServerNames) {
    for name in conf.own_protected_names() {
        if !names.protected.iter().any(|n| header_names_match(n, name)) {
            names.protected.push(name.clone());
        }
    }
    for name in conf.pass_client_headers() {
        if !names.passed.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.passed.push(name.clone());
        }
    }
}

/// Every server{} of the http block `cf` is parsing.
fn servers<'a>(cf: &ngx_conf_t) -> Vec<&'a ngx_http_core_srv_conf_t> {
    let Some(cmcf) = NgxHttpCoreModule::main_conf(cf) else {
        return Vec::new();
    };
    // SAFETY: after parsing, cmcf->servers is an array of server conf pointers.
    let servers: &[*mut ngx_http_core_srv_conf_t] = unsafe { cmcf.servers.as_slice() };
    // SAFETY: each is a live server conf of this configuration.
    servers
        .iter()
        .filter_map(|&s| unsafe { s.as_ref() })
        .collect()
}

/// Fills each server's `SrvConf::protected` with the names the module protects at the
/// http level, the server level and in any location of the server, and
/// `SrvConf::pass_client` with those of them `identity_pass_client_header` names.
///
/// # Safety
/// `cf` is the http block's configuration during `init_main_conf` (parsed, not merged).
pub unsafe fn collect_protected_names(cf: &mut ngx_conf_t) {
    let http_level = IdentityModule::location_conf(cf);
    for cscf in servers(cf) {
        let mut names = ServerNames::default();
        if let Some(conf) = http_level {
            add_names(conf, &mut names);
        }
        if let Some(conf) = IdentityModule::location_conf(cscf) {
            add_names(conf, &mut names);
        }
        if let Some(core) = NgxHttpCoreModule::location_conf(cscf) {
            // SAFETY: per the caller, the server's location tree is parsed, not merged.
            unsafe { collect_names(core, &mut names) };
        }
        if let Some(srv) = IdentityModule::server_conf_mut(cscf) {
            srv.protected = names.protected;
            srv.pass_client = names.passed;
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
    let http_level = IdentityModule::location_conf(cf).and_then(|c| c.request.clone());
    for cscf in servers(cf) {
        let (Some(srv_identity), Some(srv_core)) = (
            IdentityModule::location_conf(cscf),
            NgxHttpCoreModule::location_conf(cscf),
        ) else {
            continue;
        };
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
