//! The parsers of the `identity_*` directives (declared in `directives.rs`): each reads
//! the directive's arguments into the location configuration, or says why not.

use core::ptr;

use ngx::ffi::{
    ngx_conf_t, ngx_http_compile_complex_value, ngx_http_compile_complex_value_t,
    ngx_http_complex_value_t, ngx_parse_size, ngx_parse_time, ngx_pcalloc, ngx_str_t,
};

use crate::config::{
    ConfigError, IdentityConf, IdentityHeader, KeyDef, MergeError, RequestUri, Require, Sealed,
    SealedCookie,
};
use crate::decision::OnError;
use crate::header::{header_names_match, is_valid_header_name};

mod assertion;
mod cache;
pub use assertion::*;
pub use cache::*;

/// `identity_key` when no level sets it.
const DEFAULT_KEY: &str = "$cookie_session";

/// The default `identity_key`, compiled (once per server that needs it).
pub fn default_key(cf: &mut ngx_conf_t) -> Result<KeyDef, MergeError> {
    compile_key(cf, DEFAULT_KEY.as_bytes()).map_err(|source| MergeError::DefaultKey {
        key: DEFAULT_KEY,
        source,
    })
}

fn compile_key(cf: &mut ngx_conf_t, source: &[u8]) -> Result<KeyDef, ConfigError> {
    let value = compile_complex_value(cf, source)?;
    let variable = match crate::header::single_variable(source) {
        Some(mut name) => {
            let mut name = ngx_str_t {
                len: name.len(),
                data: name.as_mut_ptr(),
            };
            // SAFETY: cf is the live configuration; nginx copies the name. The value
            // above compiled with this variable in it (a capture is never taken for
            // one), so this finds the index the compiled value uses.
            let index = unsafe { ngx::ffi::ngx_http_get_variable_index(cf, &mut name) };
            usize::try_from(index).ok()
        }
        None => None,
    };
    Ok(KeyDef {
        value,
        source: source.to_vec(),
        variable,
    })
}

/// The arguments of the directive being parsed, the directive's own name first.
///
/// # Safety
/// `cf` must be the configuration being parsed, with `args` an array of `ngx_str_t`.
pub unsafe fn args(cf: &ngx_conf_t) -> &[ngx_str_t] {
    // SAFETY: nginx fills cf->args with ngx_str_t values for the current directive.
    unsafe { (*cf.args).as_slice() }
}

pub fn text(s: &ngx_str_t) -> String {
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

pub(crate) fn on_off(value: &ngx_str_t) -> Result<bool, ConfigError> {
    match value.as_bytes() {
        v if v.eq_ignore_ascii_case(b"on") => Ok(true),
        v if v.eq_ignore_ascii_case(b"off") => Ok(false),
        _ => Err(ConfigError::InvalidValue(
            text(value),
            "it must be \"on\" or \"off\"",
        )),
    }
}

pub(crate) fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), ConfigError> {
    if slot.is_some() {
        return Err(ConfigError::Duplicate);
    }
    *slot = Some(value);
    Ok(())
}

pub fn request(
    _cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let value = a[1];
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

pub fn key(
    cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    // Checked before compiling, which may log errors of its own.
    if conf.key_def.is_some() {
        return Err(ConfigError::Duplicate);
    }
    let key = compile_key(cf, a[1].as_bytes())?;
    set_once(&mut conf.key_def, key)
}

pub fn header(
    cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let (name, value) = (a[1], a[2]);
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
        indexed: crate::headers_in::is_indexed(name.as_bytes()),
        value: cv,
        source: crate::config::HeaderSource::of(value.as_bytes()),
    });
    Ok(())
}

pub fn strip(
    _cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let name = a[1];
    if !is_valid_header_name(name.as_bytes()) {
        return Err(ConfigError::HeaderName(text(&name)));
    }
    conf.strip
        .get_or_insert_with(Vec::new)
        .push(name.as_bytes().to_vec());
    Ok(())
}

pub fn pass_client_header(
    _cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let name = a[1];
    if !is_valid_header_name(name.as_bytes()) {
        return Err(ConfigError::HeaderName(text(&name)));
    }
    let names = conf.pass_client.get_or_insert_with(Vec::new);
    if names
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    {
        return Err(ConfigError::Duplicate);
    }
    names.push(name.as_bytes().to_vec());
    Ok(())
}

pub fn anonymous(
    _cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let value = on_off(&a[1])?;
    set_once(&mut conf.anonymous, value)
}

pub fn strip_cookie(
    _cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let value = on_off(&a[1])?;
    set_once(&mut conf.strip_cookie, value)
}

pub fn on_error(
    _cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let value = a[1];
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

pub fn max_size(
    _cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let mut value = a[1];
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

pub(crate) fn parse_seconds(value: &ngx_str_t) -> Result<u32, ConfigError> {
    let mut v = *value;
    // SAFETY: ngx_parse_time only reads v.
    let secs = unsafe { ngx_parse_time(&mut v, 1) };
    u32::try_from(secs)
        .map_err(|_| ConfigError::InvalidValue(text(value), "it must be a time such as 60s or 10m"))
}

pub fn sealed(
    _cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let name = a[1];
    if name.as_bytes() == b"off" {
        if a.len() > 2 {
            return Err(ConfigError::InvalidValue(
                text(&a[2]),
                "\"off\" takes no parameter",
            ));
        }
        return set_once(&mut conf.sealed, Sealed::Off);
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
        Sealed::Cookie(SealedCookie {
            name: name.as_bytes().to_vec(),
            max_age,
        }),
    )
}

/// `identity_require value ... [error=401|403] | off`. `off` is an empty list, alone at
/// its level.
pub fn require(
    cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let cleared = conf.require.as_ref().is_some_and(Vec::is_empty);
    if a.len() == 2 && a[1].as_bytes() == b"off" {
        if conf.require.is_some() {
            return Err(ConfigError::InvalidValue(
                "off".into(),
                "it cannot be combined with other identity_require at the same level",
            ));
        }
        conf.require = Some(Vec::new());
        return Ok(());
    }
    if cleared {
        return Err(ConfigError::InvalidValue(
            text(&a[1]),
            "\"identity_require off\" is already set at this level",
        ));
    }
    let mut words = &a[1..];
    let mut error = 403;
    if let Some((last, rest)) = words.split_last() {
        if let Some(code) = last.as_bytes().strip_prefix(b"error=") {
            error = match code {
                b"401" => 401,
                b"403" => 403,
                _ => {
                    return Err(ConfigError::InvalidValue(
                        text(last),
                        "it must be error=401 or error=403",
                    ))
                }
            };
            words = rest;
        }
    }
    if words.is_empty() {
        return Err(ConfigError::InvalidValue(
            String::new(),
            "it needs at least one value",
        ));
    }
    let mut values = Vec::with_capacity(words.len());
    for w in words {
        values.push(compile_complex_value(cf, w.as_bytes())?);
    }
    // SAFETY: while parsing, cf->conf_file is the file being read.
    let at = unsafe { cf.conf_file.as_ref() }
        .map(|f| format!("{}:{}", text(&f.file.name), f.line))
        .unwrap_or_default();
    conf.require
        .get_or_insert_with(Vec::new)
        .push(Require { values, error, at });
    Ok(())
}
