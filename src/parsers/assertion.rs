//! The parsers of `identity_assertion` and `identity_jwks`.

use core::num::NonZeroU32;

use ngx::ffi::{ngx_conf_t, ngx_str_t};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};

use super::{parse_seconds, set_once, text};
use crate::assertion::{parse_claim_list, AssertionSpec};
use crate::config::{Assertion, AssertionHeader, ConfigError, IdentityConf};
use crate::header::is_valid_header_name;

/// `identity_assertion header [audience=string] [issuer=string] [ttl=time] [claims=a,b]`
/// or `identity_assertion off`.
pub fn assertion(
    _cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let name = a[1];
    if name.as_bytes() == b"off" && a.len() == 2 {
        return set_once(&mut conf.assertion, Assertion::Off);
    }
    if !is_valid_header_name(name.as_bytes()) {
        return Err(ConfigError::HeaderName(text(&name)));
    }
    let mut spec = AssertionSpec::default();
    let mut seen: Vec<&[u8]> = Vec::new();
    for param in &a[2..] {
        let bytes = param.as_bytes();
        let Some(eq) = bytes.iter().position(|&b| b == b'=') else {
            return Err(ConfigError::InvalidValue(
                text(param),
                "the parameters are audience=, issuer=, ttl= and claims=",
            ));
        };
        let (key, value) = (&bytes[..eq], &bytes[eq + 1..]);
        if seen.contains(&key) {
            return Err(ConfigError::InvalidValue(
                text(param),
                "this parameter is given twice",
            ));
        }
        seen.push(key);
        let string = || {
            String::from_utf8(value.to_vec())
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    ConfigError::InvalidValue(text(param), "it must be a non-empty UTF-8 string")
                })
        };
        match key {
            b"audience" => spec.audience = Some(string()?),
            b"issuer" => spec.issuer = string()?,
            b"ttl" => {
                let value = ngx_str_t {
                    len: value.len(),
                    data: value.as_ptr() as *mut u8,
                };
                spec.ttl = NonZeroU32::new(parse_seconds(&value)?).ok_or_else(|| {
                    ConfigError::InvalidValue(text(param), "the ttl must be at least 1s")
                })?;
            }
            b"claims" => spec.claims = Some(parse_claim_list(&string()?)?),
            _ => {
                return Err(ConfigError::InvalidValue(
                    text(param),
                    "the parameters are audience=, issuer=, ttl= and claims=",
                ))
            }
        }
    }
    set_once(
        &mut conf.assertion,
        Assertion::Header(Box::new(AssertionHeader {
            name: name.as_bytes().to_vec(),
            lowcase_name: name.as_bytes().to_ascii_lowercase(),
            indexed: crate::headers_in::is_indexed(name.as_bytes()),
            spec,
        })),
    )
}

/// `identity_jwks`: the location answers with the JWKS of `identity_assertion_key`.
pub fn jwks(
    cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    _a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    set_once(&mut conf.jwks, true)?;
    // In a location, cf->ctx holds the location's core conf: its content handler.
    let clcf = NgxHttpCoreModule::location_conf_mut(cf).ok_or(ConfigError::NoMemory)?;
    clcf.handler = Some(crate::jwks::jwks_handler);
    Ok(())
}
