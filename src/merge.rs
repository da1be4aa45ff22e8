//! Merging a location's configuration with its enclosing levels: the declared
//! inheritance (`directives.rs`), then what is computed from it and the checks that
//! `nginx -t` reports.

use ngx::ffi::{ngx_conf_t, ngx_http_core_srv_conf_t};
use ngx::http::{HttpModuleMainConf, HttpModuleServerConf, NgxHttpCoreModule};

use crate::config::{IdentityConf, MergeError};
use crate::header::{cookie_names_in_key, header_names_in_key, header_names_match};

/// The server{} being merged, as a cache question names it: its `server_name` and every
/// address it listens on. Two servers that nginx tells apart (other names, or other
/// ports, unnamed ones included) never share entries, and a server keeps its identity
/// across reloads, whatever the order of the servers in the file.
///
/// # Safety
/// `cf` is the configuration while nginx merges a server's configurations: its ctx is an
/// `ngx_http_conf_ctx_t` whose srv_conf is that server's, and the core module's main
/// conf holds every `listen` of the http block.
unsafe fn server_identity(cf: &ngx_conf_t) -> Vec<u8> {
    let server = NgxHttpCoreModule::server_conf(cf);
    let cscf = server.map_or(core::ptr::null(), |c| c as *const ngx_http_core_srv_conf_t);
    let mut listens: Vec<&[u8]> = Vec::new();
    // SAFETY: ports is null or an array of ngx_http_conf_port_t, each with an array of
    // ngx_http_conf_addr_t whose servers are core server confs; all live in cf's pool.
    unsafe {
        let cmcf = NgxHttpCoreModule::main_conf(cf);
        if let Some(ports) = cmcf.and_then(|c| c.ports.as_ref()) {
            let ports = core::slice::from_raw_parts(
                ports.elts as *const ngx::ffi::ngx_http_conf_port_t,
                ports.nelts,
            );
            for port in ports {
                let addrs = core::slice::from_raw_parts(
                    port.addrs.elts as *const ngx::ffi::ngx_http_conf_addr_t,
                    port.addrs.nelts,
                );
                for addr in addrs {
                    let servers = core::slice::from_raw_parts(
                        addr.servers.elts as *const *const ngx_http_core_srv_conf_t,
                        addr.servers.nelts,
                    );
                    if servers.contains(&cscf) {
                        listens.push(addr.opt.addr_text.as_bytes());
                    }
                }
            }
        }
    }
    listens.sort_unstable();
    listens.dedup();
    let name = server.map_or(&[][..], |c| c.server_name.as_bytes());
    let mut out =
        Vec::with_capacity(name.len() + 1 + listens.iter().map(|l| l.len() + 1).sum::<usize>());
    out.extend_from_slice(name);
    for listen in listens {
        // Neither a server name nor an address holds a NUL.
        out.push(0);
        out.extend_from_slice(listen);
    }
    out
}

impl IdentityConf {
    /// Fills unset fields from the enclosing level, as nginx's own modules merge, then
    /// computes what the handlers need from the result.
    pub fn merge(&mut self, cf: &mut ngx_conf_t, prev: &IdentityConf) -> Result<(), MergeError> {
        self.inherit(cf, prev)?;
        self.key = self
            .key_def
            .as_ref()
            .map_or(core::ptr::null_mut(), |k| k.value);
        self.key_variable = self.key_def.as_ref().and_then(|k| k.variable);
        self.purge_zone = self.purge.map_or(core::ptr::null_mut(), |z| z.0);
        if let (Some(zone), Some(uri)) = (self.cache_zone(), self.enabled()) {
            // A purge removes a credential's entry for every question asked through the zone.
            // SAFETY: merging runs inside the http block, whose ctx is the current server's.
            let server = unsafe { server_identity(cf) };
            let question = crate::cache_entry::question(&server, uri.as_bytes());
            zone.add_question(&question);
            self.question = question;
        }
        if self.sealed_cookie().is_some()
            && crate::module::main_conf_of(cf).is_none_or(|m| m.keyring.is_none())
        {
            return Err(MergeError::SealedWithoutKeys);
        }

        let no_assertion_keys =
            crate::module::main_conf_of(cf).is_none_or(|m| m.assertion_keys.is_none());
        if let Some(a) = self.assertion_header() {
            if no_assertion_keys {
                return Err(MergeError::AssertionWithoutKeys("identity_assertion"));
            }
            if self
                .identity_headers()
                .iter()
                .any(|h| header_names_match(&h.name, &a.name))
            {
                return Err(MergeError::AssertionHeaderTaken(
                    String::from_utf8_lossy(&a.name).into_owned(),
                ));
            }
        }
        if self.jwks == Some(true) && no_assertion_keys {
            return Err(MergeError::AssertionWithoutKeys("identity_jwks"));
        }

        // The enclosing level's own names count too: the outermost (http) level is only
        // ever merged as a parent, so its list is built here.
        let mut spoofable = prev.spoofable.clone();
        for name in prev.own_protected_names().chain(self.own_protected_names()) {
            if !spoofable.iter().any(|n| header_names_match(n, name)) {
                spoofable.push(name.clone());
            }
        }
        self.spoofable = spoofable;

        self.session_cookies = self
            .key_source()
            .map(cookie_names_in_key)
            .unwrap_or_default();
        self.key_headers = self
            .key_source()
            .map(header_names_in_key)
            .unwrap_or_default();
        if self.strip_cookie == Some(true) && self.session_cookies.is_empty() {
            return Err(MergeError::StripCookieWithoutCookieKey);
        }
        Ok(())
    }
}
