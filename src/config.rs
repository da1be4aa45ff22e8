//! The `identity_*` directives: parsing, merging across http/server/location, and the
//! configuration checks that `nginx -t` reports.

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::ffi::{
    ngx_conf_t, ngx_http_compile_complex_value, ngx_http_compile_complex_value_t,
    ngx_http_complex_value_t, ngx_parse_size, ngx_pcalloc, ngx_str_t, NGX_LOG_EMERG,
};
use ngx::ngx_conf_log_error;

use crate::decision::{OnError, Policy};
use crate::header::{cookie_names_in_key, header_names_match, is_valid_header_name};

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
}

/// One `identity_header name value`.
pub struct IdentityHeader {
    pub name: Vec<u8>,
    pub lowcase_name: Vec<u8>,
    pub value: *mut ngx_http_complex_value_t,
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

    pub fn identity_headers(&self) -> &[IdentityHeader] {
        self.headers.as_deref().unwrap_or(&[])
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

        let mut spoofable = prev.spoofable.clone();
        let own = self
            .strip
            .iter()
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
