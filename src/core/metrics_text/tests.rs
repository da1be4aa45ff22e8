use super::*;

#[test]
fn classifies_calls() {
    let ok = ServiceCall {
        status: 200,
        complete: true,
        connected: true,
        ..ServiceCall::default()
    };
    assert_eq!(classify(&ok), ServiceResult::S2xx);
    for (status, want) in [
        (302, ServiceResult::S3xx),
        (401, ServiceResult::S4xx),
        (503, ServiceResult::S5xx),
        (0, ServiceResult::Invalid),
        (199, ServiceResult::Invalid),
        (600, ServiceResult::Invalid),
    ] {
        assert_eq!(classify(&ServiceCall { status, ..ok }), want, "{status}");
    }
    let nginx = |code, connected| ServiceCall {
        nginx_status: Some(code),
        status: code,
        connected,
        ..ok
    };
    assert_eq!(classify(&nginx(504, true)), ServiceResult::Timeout);
    assert_eq!(classify(&nginx(502, false)), ServiceResult::Unreachable);
    assert_eq!(classify(&nginx(502, true)), ServiceResult::Invalid);
    assert_eq!(classify(&nginx(500, true)), ServiceResult::S5xx);
    let overflow = ServiceCall {
        overflow: true,
        ..ok
    };
    assert_eq!(classify(&overflow), ServiceResult::Oversize);
    let failed = ServiceCall { failed: true, ..ok };
    assert_eq!(classify(&failed), ServiceResult::Invalid);
    let cut = ServiceCall {
        complete: false,
        ..ok
    };
    assert_eq!(classify(&cut), ServiceResult::Incomplete);
    for r in [
        ServiceResult::S2xx,
        ServiceResult::Timeout,
        ServiceResult::Invalid,
    ] {
        assert!(r.index() < RESULTS.len());
    }
    assert_eq!(RESULTS[ServiceResult::Unreachable.index()], "unreachable");
    assert_eq!(RESULTS[ServiceResult::Invalid.index()], "invalid");
}

#[test]
fn buckets() {
    assert_eq!(bucket_index(0), 0);
    assert_eq!(bucket_index(1), 0);
    assert_eq!(bucket_index(2), 1);
    assert_eq!(bucket_index(3), 2);
    assert_eq!(bucket_index(10_000), 12);
    assert_eq!(bucket_index(10_001), 13);
    assert_eq!(le_label(1), "0.001");
    assert_eq!(le_label(250), "0.25");
    assert_eq!(le_label(2500), "2.5");
    assert_eq!(le_label(10_000), "10");
}

#[test]
fn statuses_and_reasons() {
    assert_eq!(status_index("OK"), Some(0));
    assert_eq!(status_index("FORBIDDEN"), Some(8));
    assert_eq!(status_index("BYPASS"), None);
    assert_eq!(
        SEALED_REASONS[sealed_reason_index(OpenError::Tag)],
        "authentication"
    );
    assert_eq!(
        SEALED_REASONS[sealed_reason_index(OpenError::TooOld)],
        "too_old"
    );
}

#[test]
fn escapes_labels() {
    assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

#[test]
fn renders_every_family_with_help_and_type() {
    let mut s = Snapshot::default();
    s.statuses[1] = 7;
    s.results[3] = 2;
    s.buckets[0] = 1;
    s.buckets[13] = 1;
    s.duration_sum_ms = 12_345;
    s.zones.push(ZoneSnapshot {
        name: "users".into(),
        entries: 3,
        bytes: 8192,
        size: 1 << 20,
        counters: [1, 2, 3, 4],
    });
    let text = render(&s);
    for family in [
        "nginx_identity_requests_total counter",
        "nginx_identity_user_service_requests_total counter",
        "nginx_identity_user_service_duration_seconds histogram",
        "nginx_identity_cache_entries gauge",
        "nginx_identity_cache_bytes gauge",
        "nginx_identity_cache_size_bytes gauge",
        "nginx_identity_cache_evictions_total counter",
        "nginx_identity_cache_purges_total counter",
        "nginx_identity_cache_stale_total counter",
        "nginx_identity_cache_coalesced_total counter",
        "nginx_identity_sealed_failures_total counter",
    ] {
        assert!(text.contains(&format!("# TYPE {family}\n")), "{family}");
        let name = family.split(' ').next().unwrap_or_default();
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
    }
    assert!(text.contains("nginx_identity_requests_total{status=\"HIT\"} 7\n"));
    assert!(text.contains("nginx_identity_requests_total{status=\"FORBIDDEN\"} 0\n"));
    assert!(text.contains("nginx_identity_user_service_requests_total{result=\"5xx\"} 2\n"));
    assert!(text.contains("_bucket{le=\"0.001\"} 1\n"));
    assert!(text.contains("_bucket{le=\"10\"} 1\n"));
    assert!(text.contains("_bucket{le=\"+Inf\"} 2\n"));
    assert!(text.contains("nginx_identity_user_service_duration_seconds_sum 12.345\n"));
    assert!(text.contains("nginx_identity_user_service_duration_seconds_count 2\n"));
    assert!(text.contains("nginx_identity_cache_size_bytes{zone=\"users\"} 1048576\n"));
    assert!(text.contains("nginx_identity_cache_coalesced_total{zone=\"users\"} 4\n"));
    assert!(text.contains("nginx_identity_cache_evictions_total{zone=\"users\"} 1\n"));
    assert!(text.contains("nginx_identity_sealed_failures_total{reason=\"expired\"} 0\n"));
    assert!(text.ends_with('\n'));
}
