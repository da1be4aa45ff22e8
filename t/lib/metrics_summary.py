#!/usr/bin/env python3
"""Reads a Prometheus text exposition on stdin with prometheus_client's parser (which
raises on anything malformed) and prints what t/052-metrics.t compares: every family
with its type, then every sample that is not zero, sorted; histogram buckets and the
zones' byte gauges (which depend on timing and page sizes) as checks instead of values.
"""
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
lines = []
for family in text_string_to_metric_families(text):
    if not family.documentation:
        sys.exit(f"{family.name}: no HELP")
    lines.append(f"family {family.name} {family.type}")
    buckets = []
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "le")
        name = f"{s.name}{{{labels}}}" if labels else s.name
        if s.name.endswith("_bucket"):
            buckets.append(s.value)
            continue
        if s.name == "nginx_identity_cache_bytes":
            lines.append(f"{name} {'positive' if s.value > 0 else 'zero'}")
            continue
        if s.name.endswith("_sum"):
            lines.append(f"{name} {'present' if s.value >= 0 else 'negative'}")
            continue
        if s.value != 0:
            lines.append(f"{name} {s.value:g}")
    if buckets:
        cumulative = all(a <= b for a, b in zip(buckets, buckets[1:]))
        lines.append(f"{family.name} buckets {len(buckets)} cumulative={cumulative}")
    if family.name == "nginx_identity_requests":
        lines.append(f"statuses {len(family.samples)}")
print("\n".join(sorted(lines)))
