//! The `identity_*` directives: parsing, merging across http/server/location, and the
//! configuration checks that `nginx -t` reports.

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::ffi::{
    ngx_conf_t, ngx_http_compile_complex_value, ngx_http_compile_complex_value_t,
    ngx_http_complex_value_t, ngx_http_conf_ctx_t, ngx_http_core_loc_conf_t, ngx_http_core_module,
    ngx_parse_size, ngx_parse_time, ngx_pcalloc, ngx_shared_memory_add, ngx_shm_zone_t, ngx_str_t,
    NGX_LOG_EMERG,
};
use ngx::ngx_conf_log_error;

use crate::cache::{init_zone, CacheZone, LockPolicy};
use crate::cache_entry::{parse_status_range, ValidRule, DEFAULT_VALID};
use crate::decision::{OnError, Policy};
use crate::header::{
    cookie_names_in_key, header_names_in_key, header_names_match, is_valid_header_name,
};
use crate::module::{allocate_in_pool, module};

/// `identity_max_size` when unset.
pub const DEFAULT_MAX_SIZE: usize = 8 * 1024;
/// `identity_key` when unset.
const DEFAULT_KEY: &str = "$cookie_session";

/// A configuration mistake, reported by `nginx -t` as `"directive" reason`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("is duplicate")]
    Duplicate,
    #[error("invalid value \"{0}\": {1}")]
    InvalidValue(String, &'static str),
    #[error("invalid header name \"{0}\": it must be an HTTP token")]
    HeaderName(String),
    #[error("the value could not be compiled")]
    ComplexValue,
    #[error("out of memory")]
    NoMemory,
    #[error("zone \"{0}\" is already defined")]
    DuplicateZone(String),
}

/// One `identity_header name value`.
pub struct IdentityHeader {
    pub name: Vec<u8>,
    pub lowcase_name: Vec<u8>,
    pub value: *mut ngx_http_complex_value_t,
}

impl IdentityHeader {
    /// The name, for the lifetime of the configuration (which outlives every request
    /// and is never modified once parsed).
    pub fn name(&self) -> &'static [u8] {
        // SAFETY: the Vec lives in the configuration and is not changed after parsing.
        unsafe { core::slice::from_raw_parts(self.name.as_ptr(), self.name.len()) }
    }

    pub fn lowcase_name(&self) -> &'static [u8] {
        // SAFETY: as for `name`.
        unsafe { core::slice::from_raw_parts(self.lowcase_name.as_ptr(), self.lowcase_name.len()) }
    }
}

/// `identity_request`.
#[derive(Clone)]
pub enum RequestUri {
    Off,
    Uri(ngx_str_t),
}

/// Location configuration. `None`/null means "not set at this level"; `merge` fills in
/// the parent's value, so after merging every field a handler reads is set.
pub struct IdentityConf {
    pub request: Option<RequestUri>,
    pub key: *mut ngx_http_complex_value_t,
    key_source: Option<Vec<u8>>,
    pub headers: Option<Vec<IdentityHeader>>,
    strip: Vec<Vec<u8>>,
    pub anonymous: Option<bool>,
    pub on_error: Option<OnError>,
    pub strip_cookie: Option<bool>,
    pub max_size: Option<usize>,
    /// Client header names removed on every path: this level's `identity_header` and
    /// `identity_strip` names plus every enclosing level's, so an inner level can never
    /// re-open a name an outer level protects.
    pub spoofable: Vec<Vec<u8>>,
    /// Cookie names `identity_strip_cookie on` removes, read from the key.
    pub session_cookies: Vec<Vec<u8>>,
    /// Headers the key reads through `$http_NAME` (`header::header_names_in_key`).
    pub key_headers: Vec<Vec<u8>>,
    /// `identity_cache`: `Some(null)` is `off`.
    pub cache: Option<*mut ngx_shm_zone_t>,
    pub cache_valid: Option<Vec<ValidRule>>,
    pub cache_use_stale: Option<u32>,
    pub cache_lock: Option<bool>,
    pub cache_lock_timeout_ms: Option<u64>,
    /// `identity_cache_purge`: this location is a purge handler for that zone.
    pub purge_zone: *mut ngx_shm_zone_t,
    /// `identity_sealed`: `Some(None)` is `off`.
    pub sealed: Option<Option<SealedCookie>>,
    /// The user-service question a cache entry of this location answers
    /// (`cache_entry::question`), fixed while merging; empty without a cache.
    pub question: Vec<u8>,
}

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
    // SAFETY: per the caller.
    let (cscf, cmcf) = unsafe {
        let ctx = &*(cf.ctx as *const ngx_http_conf_ctx_t);
        (
            *ctx.srv_conf.add(ngx_http_core_module.ctx_index)
                as *const ngx::ffi::ngx_http_core_srv_conf_t,
            &*(*ctx.main_conf.add(ngx_http_core_module.ctx_index)
                as *const ngx::ffi::ngx_http_core_main_conf_t),
        )
    };
    let mut listens: Vec<&[u8]> = Vec::new();
    // SAFETY: ports is null or an array of ngx_http_conf_port_t, each with an array of
    // ngx_http_conf_addr_t whose servers are core server confs; all live in cf's pool.
    unsafe {
        if let Some(ports) = cmcf.ports.as_ref() {
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
                        addr.servers.elts as *const *const ngx::ffi::ngx_http_core_srv_conf_t,
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
    // SAFETY: a non-null cscf is the server's core conf.
    let name = unsafe { cscf.as_ref() }.map_or(&[][..], |c| c.server_name.as_bytes());
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

/// `identity_sealed name [max_age=time]`.
#[derive(Clone)]
pub struct SealedCookie {
    pub name: Vec<u8>,
    pub max_age: Option<i64>,
}

impl Default for IdentityConf {
    fn default() -> Self {
        IdentityConf {
            request: None,
            key: ptr::null_mut(),
            key_source: None,
            headers: None,
            strip: Vec::new(),
            anonymous: None,
            on_error: None,
            strip_cookie: None,
            max_size: None,
            spoofable: Vec::new(),
            session_cookies: Vec::new(),
            key_headers: Vec::new(),
            cache: None,
            cache_valid: None,
            cache_use_stale: None,
            cache_lock: None,
            cache_lock_timeout_ms: None,
            purge_zone: ptr::null_mut(),
            sealed: None,
            question: Vec::new(),
        }
    }
}

impl IdentityConf {
    /// Whether the module asks the user service here.
    pub fn enabled(&self) -> Option<&ngx_str_t> {
        match &self.request {
            Some(RequestUri::Uri(uri)) => Some(uri),
            _ => None,
        }
    }

    pub fn policy(&self) -> Policy {
        Policy {
            anonymous: self.anonymous.unwrap_or(false),
            on_error: self.on_error.unwrap_or(OnError::Respond(503)),
        }
    }

    pub fn max_size(&self) -> usize {
        self.max_size.unwrap_or(DEFAULT_MAX_SIZE)
    }

    /// The sealed cookie opened here, if any.
    pub fn sealed_cookie(&self) -> Option<&SealedCookie> {
        self.sealed.as_ref().and_then(|s| s.as_ref())
    }

    /// Whether the module does anything here beyond anti-spoofing.
    pub fn active(&self) -> bool {
        self.enabled().is_some() || self.sealed_cookie().is_some()
    }

    /// The cache zone in use here, if any.
    pub fn cache_zone(&self) -> Option<&CacheZone> {
        zone_of(self.cache.unwrap_or(ptr::null_mut()))
    }

    pub fn cache_valid(&self) -> &[ValidRule] {
        self.cache_valid.as_deref().unwrap_or(&DEFAULT_VALID)
    }

    pub fn cache_use_stale(&self) -> u32 {
        self.cache_use_stale.unwrap_or(0)
    }

    pub fn lock_policy(&self) -> LockPolicy {
        LockPolicy {
            enabled: self.cache_lock.unwrap_or(true),
            timeout_ms: self.cache_lock_timeout_ms.unwrap_or(5000),
        }
    }

    pub fn identity_headers(&self) -> &[IdentityHeader] {
        self.headers.as_deref().unwrap_or(&[])
    }

    /// The header names this level itself protects (`identity_strip`, `identity_header`),
    /// before merging: what the server-wide strip collects from every level.
    pub fn own_protected_names(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.strip
            .iter()
            .chain(self.identity_headers().iter().map(|h| &h.name))
    }

    /// Whether `other` asks the user service the same question: the same
    /// `identity_request` URI, the same `identity_key` definition, the same cache zone and
    /// the same sealed cookie. An answer obtained for one is valid for the other.
    pub fn same_question(&self, other: &IdentityConf) -> bool {
        let uri = |c: &IdentityConf| c.enabled().map(|u| u.as_bytes().to_vec());
        let sealed = |c: &IdentityConf| c.sealed_cookie().map(|s| (s.name.clone(), s.max_age));
        uri(self) == uri(other)
            && self.key_source == other.key_source
            && self.cache.unwrap_or(ptr::null_mut()) == other.cache.unwrap_or(ptr::null_mut())
            && sealed(self) == sealed(other)
    }

    /// Fills unset fields from the enclosing level, as nginx's own modules merge.
    pub fn merge(&mut self, cf: &mut ngx_conf_t, prev: &mut IdentityConf) -> Result<(), String> {
        if prev.key.is_null() {
            // The default key is compiled once, at the outermost level, and inherited.
            prev.key = compile_complex_value(cf, DEFAULT_KEY.as_bytes())
                .map_err(|e| format!("default \"identity_key {DEFAULT_KEY}\": {e}"))?;
            prev.key_source = Some(DEFAULT_KEY.as_bytes().to_vec());
        }
        if self.request.is_none() {
            self.request = prev.request.clone();
        }
        if self.key.is_null() {
            self.key = prev.key;
            self.key_source = prev.key_source.clone();
        }
        if self.headers.is_none() {
            self.headers = prev.headers.as_ref().map(|hs| {
                hs.iter()
                    .map(|h| IdentityHeader {
                        name: h.name.clone(),
                        lowcase_name: h.lowcase_name.clone(),
                        value: h.value,
                    })
                    .collect()
            });
        }
        self.anonymous = self.anonymous.or(prev.anonymous);
        self.on_error = self.on_error.or(prev.on_error);
        self.strip_cookie = self.strip_cookie.or(prev.strip_cookie);
        self.max_size = self.max_size.or(prev.max_size);
        self.cache = self.cache.or(prev.cache);
        if let (Some(zone), Some(uri)) = (self.cache_zone(), self.enabled()) {
            // A purge removes a credential's entry for every question asked through the zone.
            // SAFETY: merging runs inside the http block, whose ctx is the current server's.
            let server = unsafe { server_identity(cf) };
            let question = crate::cache_entry::question(&server, uri.as_bytes());
            zone.add_question(&question);
            self.question = question;
        }
        if self.cache_valid.is_none() {
            self.cache_valid = prev.cache_valid.clone();
        }
        self.cache_use_stale = self.cache_use_stale.or(prev.cache_use_stale);
        self.cache_lock = self.cache_lock.or(prev.cache_lock);
        self.cache_lock_timeout_ms = self.cache_lock_timeout_ms.or(prev.cache_lock_timeout_ms);
        if self.sealed.is_none() {
            self.sealed = prev.sealed.clone();
        }
        if self.sealed_cookie().is_some()
            && crate::module::main_conf_of(cf).is_none_or(|m| m.keyring.is_none())
        {
            return Err(
                "\"identity_sealed\" needs \"identity_sealed_keys\" in the http block".to_string(),
            );
        }

        // The enclosing level's own names count too: the outermost (http) level is only
        // ever merged as a parent, so its list is built here.
        let mut spoofable = prev.spoofable.clone();
        let own = prev
            .strip
            .iter()
            .chain(prev.identity_headers().iter().map(|h| &h.name))
            .chain(self.strip.iter())
            .chain(self.identity_headers().iter().map(|h| &h.name));
        for name in own {
            if !spoofable.iter().any(|n| header_names_match(n, name)) {
                spoofable.push(name.clone());
            }
        }
        self.spoofable = spoofable;

        self.session_cookies = self
            .key_source
            .as_deref()
            .map(cookie_names_in_key)
            .unwrap_or_default();
        self.key_headers = self
            .key_source
            .as_deref()
            .map(header_names_in_key)
            .unwrap_or_default();
        if self.strip_cookie == Some(true) && self.session_cookies.is_empty() {
            return Err(
                "\"identity_strip_cookie on\" needs an \"identity_key\" that reads a \
                 $cookie_NAME variable, to know which cookie is the session"
                    .to_string(),
            );
        }
        Ok(())
    }
}

/// The arguments of the directive being parsed, the directive's own name first.
///
/// # Safety
/// `cf` must be the configuration being parsed, with `args` an array of `ngx_str_t`.
unsafe fn args(cf: &ngx_conf_t) -> &[ngx_str_t] {
    // SAFETY: nginx fills cf->args with ngx_str_t values for the current directive.
    unsafe { (*cf.args).as_slice() }
}

fn text(s: &ngx_str_t) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

fn compile_complex_value(
    cf: &mut ngx_conf_t,
    source: &[u8],
) -> Result<*mut ngx_http_complex_value_t, ConfigError> {
    // SAFETY: cf->pool is the configuration pool; the results live as long as the config.
    let cv = unsafe { ngx_pcalloc(cf.pool, size_of::<ngx_http_complex_value_t>()) }
        as *mut ngx_http_complex_value_t;
    // SAFETY: as above; a copy of the source because nginx keeps pointers into it.
    let data = unsafe { ngx_pcalloc(cf.pool, source.len().max(1)) } as *mut u8;
    // SAFETY: as above.
    let value = unsafe { ngx_pcalloc(cf.pool, size_of::<ngx_str_t>()) } as *mut ngx_str_t;
    if cv.is_null() || data.is_null() || value.is_null() {
        return Err(ConfigError::NoMemory);
    }
    // SAFETY: data has room for source.len() bytes; value points to a zeroed ngx_str_t.
    unsafe {
        ptr::copy_nonoverlapping(source.as_ptr(), data, source.len());
        (*value).data = data;
        (*value).len = source.len();
    }
    // SAFETY: an all-zero compile request is valid; the fields we need are set below.
    let mut ccv: ngx_http_compile_complex_value_t = unsafe { core::mem::zeroed() };
    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;
    // SAFETY: ccv is fully initialised; nginx logs "unknown variable" itself on failure.
    if unsafe { ngx_http_compile_complex_value(&mut ccv) } != 0 {
        return Err(ConfigError::ComplexValue);
    }
    Ok(cv)
}

fn on_off(value: &ngx_str_t) -> Result<bool, ConfigError> {
    match value.as_bytes() {
        v if v.eq_ignore_ascii_case(b"on") => Ok(true),
        v if v.eq_ignore_ascii_case(b"off") => Ok(false),
        _ => Err(ConfigError::InvalidValue(
            text(value),
            "it must be \"on\" or \"off\"",
        )),
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), ConfigError> {
    if slot.is_some() {
        return Err(ConfigError::Duplicate);
    }
    *slot = Some(value);
    Ok(())
}

fn identity_request(cf: &mut ngx_conf_t, conf: &mut IdentityConf) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let value = unsafe { args(cf) }[1];
    let setting = if value.as_bytes() == b"off" {
        RequestUri::Off
    } else if value.as_bytes().first() == Some(&b'/') {
        RequestUri::Uri(value)
    } else {
        return Err(ConfigError::InvalidValue(
            text(&value),
            "it must be \"off\" or a URI starting with \"/\"",
        ));
    };
    set_once(&mut conf.request, setting)
}

fn identity_key(cf: &mut ngx_conf_t, conf: &mut IdentityConf) -> Result<(), ConfigError> {
    if !conf.key.is_null() {
        return Err(ConfigError::Duplicate);
    }
    // SAFETY: called by nginx while parsing this directive.
    let value = unsafe { args(cf) }[1];
    conf.key = compile_complex_value(cf, value.as_bytes())?;
    conf.key_source = Some(value.as_bytes().to_vec());
    Ok(())
}

fn identity_header(cf: &mut ngx_conf_t, conf: &mut IdentityConf) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let (name, value) = unsafe {
        let a = args(cf);
        (a[1], a[2])
    };
    if !is_valid_header_name(name.as_bytes()) {
        return Err(ConfigError::HeaderName(text(&name)));
    }
    let headers = conf.headers.get_or_insert_with(Vec::new);
    if headers
        .iter()
        .any(|h| header_names_match(&h.name, name.as_bytes()))
    {
        return Err(ConfigError::InvalidValue(
            text(&name),
            "this header is already set by an identity_header at this level",
        ));
    }
    let cv = compile_complex_value(cf, value.as_bytes())?;
    let headers = conf.headers.get_or_insert_with(Vec::new);
    headers.push(IdentityHeader {
        name: name.as_bytes().to_vec(),
        lowcase_name: name.as_bytes().to_ascii_lowercase(),
        value: cv,
    });
    Ok(())
}

fn identity_strip(cf: &mut ngx_conf_t, conf: &mut IdentityConf) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let name = unsafe { args(cf) }[1];
    if !is_valid_header_name(name.as_bytes()) {
        return Err(ConfigError::HeaderName(text(&name)));
    }
    conf.strip.push(name.as_bytes().to_vec());
    Ok(())
}

fn identity_anonymous(cf: &mut ngx_conf_t, conf: &mut IdentityConf) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let value = on_off(&unsafe { args(cf) }[1])?;
    set_once(&mut conf.anonymous, value)
}

fn identity_strip_cookie(cf: &mut ngx_conf_t, conf: &mut IdentityConf) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let value = on_off(&unsafe { args(cf) }[1])?;
    set_once(&mut conf.strip_cookie, value)
}

fn identity_on_error(cf: &mut ngx_conf_t, conf: &mut IdentityConf) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let value = unsafe { args(cf) }[1];
    let setting = match value.as_bytes() {
        b"pass" => OnError::Pass,
        v => match core::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
        {
            Some(code) if (400..=599).contains(&code) => OnError::Respond(code),
            _ => {
                return Err(ConfigError::InvalidValue(
                    text(&value),
                    "it must be \"pass\" or a status code from 400 to 599",
                ))
            }
        },
    };
    set_once(&mut conf.on_error, setting)
}

fn identity_max_size(cf: &mut ngx_conf_t, conf: &mut IdentityConf) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let mut value = unsafe { args(cf) }[1];
    // SAFETY: ngx_parse_size only reads value.
    let size = unsafe { ngx_parse_size(&mut value) };
    if size <= 0 || size > 1024 * 1024 {
        return Err(ConfigError::InvalidValue(
            text(&value),
            "it must be a size from 1 to 1m",
        ));
    }
    set_once(&mut conf.max_size, size as usize)
}

/// The configuration-side handle of a zone, once `identity_cache_zone` defined it.
pub fn zone_of<'a>(shm: *mut ngx_shm_zone_t) -> Option<&'a CacheZone> {
    // SAFETY: a zone's data is null or the CacheZone set by identity_cache_zone.
    unsafe {
        shm.as_ref()
            .and_then(|z| (z.data as *const CacheZone).as_ref())
    }
}

/// A zone by name; created with size 0 when not (yet) defined, as nginx's own modules do,
/// and nginx refuses to start if no `identity_cache_zone` gives it a size.
fn zone_named(cf: &mut ngx_conf_t, name: &ngx_str_t) -> Result<*mut ngx_shm_zone_t, ConfigError> {
    let mut name = *name;
    // SAFETY: cf is live; the tag is this module, so names cannot collide with others'.
    let shm =
        unsafe { ngx_shared_memory_add(cf, &mut name, 0, module() as *const _ as *mut c_void) };
    if shm.is_null() {
        return Err(ConfigError::NoMemory);
    }
    Ok(shm)
}

fn parse_seconds(value: &ngx_str_t) -> Result<u32, ConfigError> {
    let mut v = *value;
    // SAFETY: ngx_parse_time only reads v.
    let secs = unsafe { ngx_parse_time(&mut v, 1) };
    u32::try_from(secs)
        .map_err(|_| ConfigError::InvalidValue(text(value), "it must be a time such as 60s or 10m"))
}

fn identity_cache_zone(cf: &mut ngx_conf_t, _conf: &mut IdentityConf) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let value = unsafe { args(cf) }[1];
    let bytes = value.as_bytes();
    let invalid =
        || ConfigError::InvalidValue(text(&value), "it must be name:size, e.g. users:32m");
    let colon = bytes.iter().position(|&b| b == b':').ok_or_else(invalid)?;
    if colon == 0 {
        return Err(invalid());
    }
    let mut size_str = ngx_str_t {
        len: bytes.len() - colon - 1,
        // SAFETY: within value's bytes.
        data: unsafe { value.data.add(colon + 1) },
    };
    // SAFETY: ngx_parse_size only reads size_str.
    let size = unsafe { ngx_parse_size(&mut size_str) };
    if size < 64 * 1024 {
        return Err(ConfigError::InvalidValue(
            text(&value),
            "the zone size must be at least 64k",
        ));
    }
    let mut name = ngx_str_t {
        len: colon,
        data: value.data,
    };
    // SAFETY: cf is live; the tag is this module.
    let shm = unsafe {
        ngx_shared_memory_add(
            cf,
            &mut name,
            size as usize,
            module() as *const _ as *mut c_void,
        )
    };
    // SAFETY: a non-null result is nginx's zone entry.
    let Some(shm) = (unsafe { shm.as_mut() }) else {
        return Err(ConfigError::NoMemory);
    };
    if !shm.data.is_null() {
        return Err(ConfigError::DuplicateZone(text(&name)));
    }
    let zone = CacheZone::new(text(&name), shm);
    let data = allocate_in_pool(cf.pool, zone);
    if data.is_null() {
        return Err(ConfigError::NoMemory);
    }
    shm.data = data;
    shm.init = Some(init_zone);
    Ok(())
}

fn identity_cache(cf: &mut ngx_conf_t, conf: &mut IdentityConf) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let value = unsafe { args(cf) }[1];
    let zone = if value.as_bytes() == b"off" {
        ptr::null_mut()
    } else {
        zone_named(cf, &value)?
    };
    set_once(&mut conf.cache, zone)
}

fn identity_cache_valid(cf: &mut ngx_conf_t, conf: &mut IdentityConf) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let a = unsafe { args(cf) };
    let ttl = parse_seconds(&a[a.len() - 1])?;
    let codes = &a[1..a.len() - 1];
    let rules = conf.cache_valid.get_or_insert_with(Vec::new);
    if codes.is_empty() {
        rules.push(ValidRule {
            min: 200,
            max: 299,
            ttl,
        });
    }
    for code in codes {
        let (min, max) = core::str::from_utf8(code.as_bytes())
            .ok()
            .and_then(parse_status_range)
            .ok_or_else(|| {
                ConfigError::InvalidValue(
                    text(code),
                    "it must be a status from 100 to 499, 1xx to 4xx, or \"any\" (5xx is never cached)",
                )
            })?;
        rules.push(ValidRule { min, max, ttl });
    }
    Ok(())
}

fn identity_cache_use_stale(
    cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let value = unsafe { args(cf) }[1];
    let secs = if value.as_bytes() == b"off" {
        0
    } else {
        parse_seconds(&value)?
    };
    set_once(&mut conf.cache_use_stale, secs)
}

fn identity_cache_lock(cf: &mut ngx_conf_t, conf: &mut IdentityConf) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let value = on_off(&unsafe { args(cf) }[1])?;
    set_once(&mut conf.cache_lock, value)
}

fn identity_cache_lock_timeout(
    cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let mut value = unsafe { args(cf) }[1];
    let original = value;
    // SAFETY: ngx_parse_time only reads value.
    let ms = unsafe { ngx_parse_time(&mut value, 0) };
    let ms = u64::try_from(ms).ok().filter(|&ms| ms > 0).ok_or_else(|| {
        ConfigError::InvalidValue(text(&original), "it must be a time such as 5s or 500ms")
    })?;
    set_once(&mut conf.cache_lock_timeout_ms, ms)
}

fn identity_cache_purge(cf: &mut ngx_conf_t, conf: &mut IdentityConf) -> Result<(), ConfigError> {
    if !conf.purge_zone.is_null() {
        return Err(ConfigError::Duplicate);
    }
    // SAFETY: called by nginx while parsing this directive.
    let value = unsafe { args(cf) }[1];
    conf.purge_zone = zone_named(cf, &value)?;
    // SAFETY: in a location, cf->ctx is its ngx_http_conf_ctx_t with the core loc conf.
    unsafe {
        let ctx = cf.ctx as *mut ngx_http_conf_ctx_t;
        let clcf =
            *(*ctx).loc_conf.add(ngx_http_core_module.ctx_index) as *mut ngx_http_core_loc_conf_t;
        (*clcf).handler = Some(crate::purge::purge_handler);
    }
    Ok(())
}

fn identity_sealed(cf: &mut ngx_conf_t, conf: &mut IdentityConf) -> Result<(), ConfigError> {
    // SAFETY: called by nginx while parsing this directive.
    let a = unsafe { args(cf) };
    let name = a[1];
    if name.as_bytes() == b"off" {
        if a.len() > 2 {
            return Err(ConfigError::InvalidValue(
                text(&a[2]),
                "\"off\" takes no parameter",
            ));
        }
        return set_once(&mut conf.sealed, None);
    }
    if !is_valid_header_name(name.as_bytes()) {
        return Err(ConfigError::InvalidValue(
            text(&name),
            "it must be a cookie name",
        ));
    }
    let mut max_age = None;
    if let Some(param) = a.get(2) {
        let value = param
            .as_bytes()
            .strip_prefix(b"max_age=")
            .ok_or(ConfigError::InvalidValue(
                text(param),
                "the parameter must be max_age=<time>",
            ))?;
        let value = ngx_str_t {
            len: value.len(),
            data: value.as_ptr() as *mut u8,
        };
        max_age = Some(i64::from(parse_seconds(&value)?));
    }
    set_once(
        &mut conf.sealed,
        Some(SealedCookie {
            name: name.as_bytes().to_vec(),
            max_age,
        }),
    )
}

/// Why `identity_sealed_keys` refuses a file.
#[derive(Debug, thiserror::Error)]
enum KeyFileError {
    #[error("cannot be read: {0}")]
    Io(#[from] std::io::Error),
    #[error("is readable by others than its owner and group (chmod o-rwx)")]
    Permissions,
    #[error("is not UTF-8 text")]
    Text,
    #[error(transparent)]
    Ring(#[from] crate::sealed::KeyRingError),
}

fn read_key_ring(path: &str) -> Result<crate::sealed::KeyRing, KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o007 != 0 {
        return Err(KeyFileError::Permissions);
    }
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| KeyFileError::Text)?;
    Ok(crate::sealed::KeyRing::parse(&text)?)
}

/// `identity_sealed_keys path` (http level): the key ring, read and checked now so that
/// `nginx -t` reports a missing, malformed or exposed file.
pub extern "C" fn set_identity_sealed_keys(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx::ffi::ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the live parser state and this module's main conf.
    let (cf_ref, main) = unsafe { (&mut *cf, &mut *(conf as *mut crate::module::MainConf)) };
    if main.keyring.is_some() {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"identity_sealed_keys\" is duplicate");
        return ngx::core::NGX_CONF_ERROR;
    }
    // SAFETY: args[1] is the path; ngx_conf_full_name makes it absolute in place.
    let mut path = unsafe { args(cf_ref) }[1];
    // SAFETY: cf->cycle is live while parsing.
    if unsafe { ngx::ffi::ngx_conf_full_name(cf_ref.cycle, &mut path, 1) } != 0 {
        return ngx::core::NGX_CONF_ERROR;
    }
    let path = text(&path);
    match read_key_ring(&path) {
        Ok(ring) => {
            main.keyring = Some(ring);
            ngx::core::NGX_CONF_OK
        }
        Err(e) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"identity_sealed_keys\" \"{path}\" {e}");
            ngx::core::NGX_CONF_ERROR
        }
    }
}

type DirectiveFn = fn(&mut ngx_conf_t, &mut IdentityConf) -> Result<(), ConfigError>;

/// Turns nginx's directive callback into a call of a safe parser, and its error into
/// an `nginx -t` message naming the directive.
///
/// # Safety
/// `cf` and `conf` are the pointers nginx passes to a directive's `set` callback for a
/// `NGX_HTTP_LOC_CONF_OFFSET` directive of this module.
unsafe fn run_directive(cf: *mut ngx_conf_t, conf: *mut c_void, parse: DirectiveFn) -> *mut c_char {
    // SAFETY: nginx passes the live parser state and this module's location conf.
    let (cf_ref, conf) = unsafe { (&mut *cf, &mut *(conf as *mut IdentityConf)) };
    // SAFETY: args[0] is the directive's name.
    let directive = text(&unsafe { args(cf_ref) }[0]);
    match parse(cf_ref, conf) {
        Ok(()) => ngx::core::NGX_CONF_OK,
        Err(ConfigError::ComplexValue) => ngx::core::NGX_CONF_ERROR,
        Err(e) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"{directive}\" {e}");
            ngx::core::NGX_CONF_ERROR
        }
    }
}

macro_rules! directive_shim {
    ($shim:ident, $parse:ident) => {
        pub extern "C" fn $shim(
            cf: *mut ngx_conf_t,
            _cmd: *mut ngx::ffi::ngx_command_t,
            conf: *mut c_void,
        ) -> *mut c_char {
            // SAFETY: nginx calls this as the directive's set callback.
            unsafe { run_directive(cf, conf, $parse) }
        }
    };
}

directive_shim!(set_identity_request, identity_request);
directive_shim!(set_identity_key, identity_key);
directive_shim!(set_identity_header, identity_header);
directive_shim!(set_identity_strip, identity_strip);
directive_shim!(set_identity_anonymous, identity_anonymous);
directive_shim!(set_identity_on_error, identity_on_error);
directive_shim!(set_identity_strip_cookie, identity_strip_cookie);
directive_shim!(set_identity_max_size, identity_max_size);
directive_shim!(set_identity_cache_zone, identity_cache_zone);
directive_shim!(set_identity_cache, identity_cache);
directive_shim!(set_identity_cache_valid, identity_cache_valid);
directive_shim!(set_identity_cache_use_stale, identity_cache_use_stale);
directive_shim!(set_identity_cache_lock, identity_cache_lock);
directive_shim!(set_identity_cache_lock_timeout, identity_cache_lock_timeout);
directive_shim!(set_identity_cache_purge, identity_cache_purge);
directive_shim!(set_identity_sealed, identity_sealed);
