//! `identity_metrics`: a content handler answering the module's counters (metrics.rs)
//! and its cache zones' gauges in the Prometheus text format (`core::metrics_text`).

use core::ptr;

use identity_core::metrics_text::{self as text, ZoneSnapshot};
use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_conf_t, ngx_create_temp_buf, ngx_http_output_filter,
    ngx_http_request_t, ngx_http_send_header, ngx_int_t, ngx_str_t,
};
use ngx::http::{HTTPStatus, HttpModuleLocationConf, NgxHttpCoreModule};

use crate::cache::CacheZone;
use crate::config::{ConfigError, IdentityConf};
use crate::metrics;
use crate::ngx_codes::{rc, NGX_ERROR, NGX_OK};

/// The directive: this location answers the metrics; the zone that counts them exists.
pub fn metrics_directive(
    cf: &mut ngx_conf_t,
    _conf: &mut IdentityConf,
    _a: &[ngx_str_t],
) -> Result<(), ConfigError> {
    metrics::add_zone(cf).map_err(|()| ConfigError::NoMemory)?;
    // In a location, cf->ctx holds the location's core conf: its content handler.
    let clcf = NgxHttpCoreModule::location_conf_mut(cf).ok_or(ConfigError::NoMemory)?;
    clcf.handler = Some(metrics_handler);
    Ok(())
}

extern "C" fn metrics_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    let r = match crate::content::start(r, crate::content::READS) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Some(mut snapshot) = metrics::snapshot() else {
        return rc(HTTPStatus::INTERNAL_SERVER_ERROR);
    };
    // SAFETY: the worker's current cycle.
    snapshot.zones = unsafe { cache_zones(ngx::ffi::ngx_cycle) };
    let body = text::render(&snapshot);
    send(r, body.as_bytes())
}

/// Every identity cache zone of `cycle`, its gauges read under its lock.
///
/// # Safety
/// `cycle` is the live cycle.
unsafe fn cache_zones(cycle: *const ngx::ffi::ngx_cycle_t) -> Vec<ZoneSnapshot> {
    // SAFETY: per the caller.
    let zones = unsafe { metrics::module_zones(cycle) };
    let mut out: Vec<ZoneSnapshot> = zones
        .into_iter()
        .filter(|z| z.shm.name.as_bytes() != metrics::ZONE_NAME.as_bytes())
        .filter_map(|z| {
            // SAFETY: every other zone of this module is a cache zone whose data is null
            // or its CacheZone.
            let cz = unsafe { (z.data as *const CacheZone).as_ref() }?;
            Some(zone_snapshot(cz, z.shm.size))
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn zone_snapshot(cz: &CacheZone, size: usize) -> ZoneSnapshot {
    let mut snap = ZoneSnapshot {
        name: cz.name.clone(),
        size: size as u64,
        counters: metrics::zone_counters(&cz.name),
        ..ZoneSnapshot::default()
    };
    if let Some(z) = cz.lock() {
        // SAFETY: the lock is held; zone is the live header and shpool its pool, whose
        // page array runs from `pages` to `last`.
        unsafe {
            snap.entries = (*z.zone).entries as u64;
            let pool = &*z.shpool;
            let pages = pool.last.offset_from(pool.pages).max(0) as u64;
            let used = pages.saturating_sub(pool.pfree as u64);
            snap.bytes = used * ngx::ffi::ngx_pagesize as u64;
        }
    }
    snap
}

fn send(r: &mut ngx_http_request_t, body: &[u8]) -> ngx_int_t {
    r.headers_out.status = HTTPStatus::OK.into();
    r.headers_out.content_length_n = body.len() as _;
    r.headers_out.content_type = ngx_str_t {
        len: text::CONTENT_TYPE.len(),
        data: text::CONTENT_TYPE.as_ptr() as *mut u8,
    };
    r.headers_out.content_type_len = text::CONTENT_TYPE.len();
    // SAFETY: r is live and its headers are set.
    let sent = unsafe { ngx_http_send_header(r) };
    if sent == NGX_ERROR || sent > NGX_OK || r.header_only() != 0 {
        return sent;
    }
    // SAFETY: the request's pool is live.
    let b: *mut ngx_buf_t = unsafe { ngx_create_temp_buf(r.pool, body.len().max(1)) };
    // SAFETY: b is null or a fresh buffer of at least body.len() bytes.
    let Some(buf) = (unsafe { b.as_mut() }) else {
        return NGX_ERROR;
    };
    // SAFETY: pos..pos+len is the fresh buffer's room.
    unsafe {
        ptr::copy_nonoverlapping(body.as_ptr(), buf.pos, body.len());
        buf.last = buf.pos.add(body.len());
    }
    buf.set_last_buf(if ptr::eq(r, r.main) { 1 } else { 0 });
    buf.set_last_in_chain(1);
    let mut out = ngx_chain_t {
        buf: b,
        next: ptr::null_mut(),
    };
    // SAFETY: r is live; the chain lives for the call and the buffer in the pool.
    unsafe { ngx_http_output_filter(r, &mut out) }
}
