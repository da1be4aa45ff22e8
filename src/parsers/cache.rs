//! The parsers of the cache directives (`identity_cache_zone`, `identity_cache*`,
//! `identity_cache_purge`).

use core::ffi::c_void;

use ngx::ffi::{ngx_conf_t, ngx_parse_size, ngx_parse_time, ngx_shared_memory_add, ngx_str_t};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};

use super::{on_off, parse_seconds, set_once, text};
use crate::cache::{init_zone, CacheZone};
use crate::cache_entry::{parse_status_range, ValidRule};
use crate::config::{CacheSetting, ConfigError, IdentityConf, ZoneRef};
use crate::module::{allocate_in_pool, module};

/// A zone by name; created with size 0 when not (yet) defined, as nginx's own modules do,
/// and nginx refuses to start if no `identity_cache_zone` gives it a size.
fn zone_named(cf: &mut ngx_conf_t, name: &ngx_str_t) -> Result<ZoneRef, ConfigError> {
    let mut name = *name;
    // SAFETY: cf is live; the tag is this module, so names cannot collide with others'.
    let shm =
        unsafe { ngx_shared_memory_add(cf, &mut name, 0, module() as *const _ as *mut c_void) };
    if shm.is_null() {
        return Err(ConfigError::NoMemory);
    }
    Ok(ZoneRef(shm))
}

pub fn cache_zone(
    cf: &mut ngx_conf_t,
    _conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let value = a[1];
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

pub fn cache(
    cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let value = a[1];
    let zone = if value.as_bytes() == b"off" {
        CacheSetting::Off
    } else {
        CacheSetting::Zone(zone_named(cf, &value)?)
    };
    set_once(&mut conf.cache, zone)
}

pub fn cache_valid(
    _cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
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

pub fn cache_use_stale(
    _cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let value = a[1];
    let secs = if value.as_bytes() == b"off" {
        0
    } else {
        parse_seconds(&value)?
    };
    set_once(&mut conf.cache_use_stale, secs)
}

pub fn cache_lock(
    _cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let value = on_off(&a[1])?;
    set_once(&mut conf.cache_lock, value)
}

pub fn cache_lock_timeout(
    _cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    let mut value = a[1];
    let original = value;
    // SAFETY: ngx_parse_time only reads value.
    let ms = unsafe { ngx_parse_time(&mut value, 0) };
    let ms = u64::try_from(ms).ok().filter(|&ms| ms > 0).ok_or_else(|| {
        ConfigError::InvalidValue(text(&original), "it must be a time such as 5s or 500ms")
    })?;
    set_once(&mut conf.cache_lock_timeout_ms, ms)
}

pub fn cache_purge(
    cf: &mut ngx_conf_t,
    conf: &mut IdentityConf,
    a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    if conf.purge.is_some() {
        return Err(ConfigError::Duplicate);
    }
    let value = a[1];
    let zone = zone_named(cf, &value)?;
    set_once(&mut conf.purge, zone)?;
    // In a location, cf->ctx holds the location's core conf: its content handler.
    let clcf = NgxHttpCoreModule::location_conf_mut(cf).ok_or(ConfigError::NoMemory)?;
    clcf.handler = Some(crate::purge::purge_handler);
    Ok(())
}
