//! The module's metrics as Prometheus text (exposition format 0.0.4): the label sets of
//! each family, how a user-service call is classified, the duration histogram's buckets,
//! and the rendering of a snapshot of the counters. The counters themselves live in
//! shared memory (the module's metrics.rs); this file only names and formats them.

use core::fmt::Write;

use crate::sealed::OpenError;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The `status` label of `nginx_identity_requests_total`: every `$identity_status` a
/// verdict can end in (not `BYPASS`, which is no verdict).
pub const STATUSES: [&str; 10] = [
    "OK",
    "HIT",
    "MISS",
    "STALE",
    "COALESCED",
    "SEALED",
    "ANONYMOUS",
    "DENIED",
    "FORBIDDEN",
    "ERROR",
];

/// The index of an `$identity_status` value in `STATUSES`, if it is counted.
pub fn status_index(status: &str) -> Option<usize> {
    STATUSES.iter().position(|s| *s == status)
}

/// How a call to the user service ended: the `result` label of
/// `nginx_identity_user_service_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceResult {
    S2xx,
    S3xx,
    S4xx,
    S5xx,
    /// No response header in time (nginx's own 504).
    Timeout,
    /// No connection (nginx's own 502 before connecting).
    Unreachable,
    /// A body larger than `identity_max_size`.
    Oversize,
    /// The body ended before its last byte.
    Incomplete,
    /// Not a readable HTTP answer: an invalid header, a status out of range, a failed
    /// subrequest.
    Invalid,
}

pub const RESULTS: [&str; 9] = [
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "timeout",
    "unreachable",
    "oversize",
    "incomplete",
    "invalid",
];

impl ServiceResult {
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What is known of a finished identity subrequest.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServiceCall {
    /// The status nginx finalized the subrequest with itself (its `rc`, when it is an
    /// HTTP status of 300 or more), rather than one the user service sent.
    pub nginx_status: Option<u16>,
    /// The response status.
    pub status: u16,
    /// The subrequest failed outright (`NGX_ERROR`).
    pub failed: bool,
    /// The body was larger than `identity_max_size`.
    pub overflow: bool,
    /// The body's last buffer arrived (or nginx ended the response itself).
    pub complete: bool,
    /// A connection to the upstream was made (true when there is no upstream).
    pub connected: bool,
}

/// Classifies a finished call.
pub fn classify(call: &ServiceCall) -> ServiceResult {
    if call.overflow {
        return ServiceResult::Oversize;
    }
    if call.failed {
        return ServiceResult::Invalid;
    }
    match call.nginx_status {
        Some(504) => return ServiceResult::Timeout,
        Some(502) if !call.connected => return ServiceResult::Unreachable,
        Some(502) => return ServiceResult::Invalid,
        _ => {}
    }
    if !call.complete {
        return ServiceResult::Incomplete;
    }
    match call.status {
        200..=299 => ServiceResult::S2xx,
        300..=399 => ServiceResult::S3xx,
        400..=499 => ServiceResult::S4xx,
        500..=599 => ServiceResult::S5xx,
        _ => ServiceResult::Invalid,
    }
}

/// Upper bounds of the duration histogram's buckets, in milliseconds (nginx's clock
/// has millisecond resolution), from 1 ms to 10 s; a last bucket `+Inf` follows.
pub const BUCKETS_MS: [u64; 13] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// Buckets including `+Inf`.
pub const BUCKET_COUNT: usize = BUCKETS_MS.len() + 1;

/// The (non-cumulative) bucket a duration falls in.
pub fn bucket_index(ms: u64) -> usize {
    BUCKETS_MS
        .iter()
        .position(|&b| ms <= b)
        .unwrap_or(BUCKETS_MS.len())
}

/// The `reason` label of `nginx_identity_sealed_failures_total`: one per failure the
/// debug log names.
pub const SEALED_REASONS: [&str; 15] = [
    "too_long",
    "base64",
    "truncated",
    "version",
    "unknown_key",
    "authentication",
    "not_object",
    "no_expiry",
    "bad_time",
    "duplicate_claim",
    "issued_in_future",
    "expired",
    "not_yet_valid",
    "too_old",
    "revoked",
];

pub fn sealed_reason_index(e: OpenError) -> usize {
    match e {
        OpenError::TooLong => 0,
        OpenError::Base64 => 1,
        OpenError::Truncated => 2,
        OpenError::Version => 3,
        OpenError::UnknownKey => 4,
        OpenError::Tag => 5,
        OpenError::NotObject => 6,
        OpenError::NoExpiry => 7,
        OpenError::BadTime => 8,
        OpenError::DuplicateClaim => 9,
        OpenError::IssuedInFuture => 10,
        OpenError::Expired => 11,
        OpenError::NotYetValid => 12,
        OpenError::TooOld => 13,
        OpenError::Revoked => 14,
    }
}

/// The per-zone counters, in this order.
pub const ZONE_COUNTERS: usize = 4;
pub const EVICTIONS: usize = 0;
pub const PURGES: usize = 1;
pub const STALE: usize = 2;
pub const COALESCED: usize = 3;

/// One cache zone at scrape time.
#[derive(Debug, Clone, Default)]
pub struct ZoneSnapshot {
    pub name: String,
    pub entries: u64,
    pub bytes: u64,
    pub size: u64,
    pub counters: [u64; ZONE_COUNTERS],
}

/// Every counter, summed over the workers' slots.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub statuses: [u64; STATUSES.len()],
    pub results: [u64; RESULTS.len()],
    /// Non-cumulative bucket counts.
    pub buckets: [u64; BUCKET_COUNT],
    pub duration_sum_ms: u64,
    pub sealed: [u64; SEALED_REASONS.len()],
    pub zones: Vec<ZoneSnapshot>,
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn labelled(out: &mut String, name: &str, label: &str, values: &[&str], counts: &[u64]) {
    for (v, n) in values.iter().zip(counts) {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape_label(v));
    }
}

/// The whole exposition.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let name = "nginx_identity_requests_total";
    family(
        &mut out,
        name,
        "counter",
        "Requests the identity module decided, by $identity_status.",
    );
    labelled(&mut out, name, "status", &STATUSES, &s.statuses);

    let name = "nginx_identity_user_service_requests_total";
    family(
        &mut out,
        name,
        "counter",
        "Calls to the user service, by how they ended.",
    );
    labelled(&mut out, name, "result", &RESULTS, &s.results);

    let name = "nginx_identity_user_service_duration_seconds";
    family(
        &mut out,
        name,
        "histogram",
        "Duration of calls to the user service.",
    );
    let mut cumulative = 0u64;
    for (i, n) in s.buckets.iter().enumerate() {
        cumulative += n;
        let le = BUCKETS_MS
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |&ms| le_label(ms));
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_sum {}", seconds(s.duration_sum_ms));
    let _ = writeln!(out, "{name}_count {cumulative}");

    let zone_families: [(&str, &str, &str); 7] = [
        (
            "nginx_identity_cache_entries",
            "gauge",
            "Entries in the identity cache zone.",
        ),
        (
            "nginx_identity_cache_bytes",
            "gauge",
            "Bytes of the identity cache zone in use (whole pages).",
        ),
        (
            "nginx_identity_cache_size_bytes",
            "gauge",
            "Size of the identity cache zone.",
        ),
        (
            "nginx_identity_cache_evictions_total",
            "counter",
            "Entries evicted to make room.",
        ),
        (
            "nginx_identity_cache_purges_total",
            "counter",
            "Entries removed by identity_cache_purge.",
        ),
        (
            "nginx_identity_cache_stale_total",
            "counter",
            "Stale answers served while the user service failed.",
        ),
        (
            "nginx_identity_cache_coalesced_total",
            "counter",
            "Requests answered by another request's call after waiting for it.",
        ),
    ];
    for (i, (name, kind, help)) in zone_families.iter().enumerate() {
        family(&mut out, name, kind, help);
        for z in &s.zones {
            let value = match i {
                0 => z.entries,
                1 => z.bytes,
                2 => z.size,
                n => z.counters[n - 3],
            };
            let _ = writeln!(out, "{name}{{zone=\"{}\"}} {value}", escape_label(&z.name));
        }
    }

    let name = "nginx_identity_sealed_failures_total";
    family(
        &mut out,
        name,
        "counter",
        "Sealed cookies present but not accepted, by reason.",
    );
    labelled(&mut out, name, "reason", &SEALED_REASONS, &s.sealed);
    out
}

/// A bucket bound in seconds, as short as it can be written (`0.001`, `2.5`, `10`).
fn le_label(ms: u64) -> String {
    let whole = ms / 1000;
    let frac = ms % 1000;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:03}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests;
