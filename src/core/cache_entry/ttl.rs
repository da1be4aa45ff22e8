//! How long an answer may be kept: `identity_cache_valid` rules and `Cache-Control`.

/// One `identity_cache_valid` rule: statuses `min..=max` are kept `ttl` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidRule {
    pub min: u16,
    pub max: u16,
    pub ttl: u32,
}

/// `2xx 60s` and `401 403 5s`, the defaults when no `identity_cache_valid` is set.
pub const DEFAULT_VALID: [ValidRule; 3] = [
    ValidRule {
        min: 200,
        max: 299,
        ttl: 60,
    },
    ValidRule {
        min: 401,
        max: 401,
        ttl: 5,
    },
    ValidRule {
        min: 403,
        max: 403,
        ttl: 5,
    },
];

/// Parses one status argument of `identity_cache_valid`: `200`, `2xx`, `4xx` or `any`.
pub fn parse_status_range(arg: &str) -> Option<(u16, u16)> {
    if arg.eq_ignore_ascii_case("any") {
        return Some((100, 599));
    }
    if let Some(first) = arg.strip_suffix("xx").or_else(|| arg.strip_suffix("XX")) {
        let d: u16 = first.parse().ok()?;
        return (1..=4).contains(&d).then_some((d * 100, d * 100 + 99));
    }
    let code: u16 = arg.parse().ok()?;
    // 5xx and errors are never cached.
    (100..=499).contains(&code).then_some((code, code))
}

/// The seconds an answer of `status` may be kept: the first matching rule, lowered (never
/// raised) by the user service's `Cache-Control`. `None` means "do not cache".
pub fn ttl_for(rules: &[ValidRule], status: u16, cache_control: &[u8]) -> Option<u32> {
    if status >= 500 {
        return None;
    }
    let rule = rules.iter().find(|r| (r.min..=r.max).contains(&status))?;
    let mut ttl = rule.ttl;
    for directive in cache_control.split(|&b| b == b',') {
        let directive = directive.trim_ascii();
        if directive.eq_ignore_ascii_case(b"no-store") {
            return None;
        }
        if let Some(value) = strip_prefix_ci(directive, b"max-age=") {
            let value = value.trim_ascii();
            let age = core::str::from_utf8(value).ok()?.parse::<u64>().ok()?;
            ttl = ttl.min(u32::try_from(age).unwrap_or(u32::MAX));
        }
    }
    (ttl > 0).then_some(ttl)
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges() {
        assert_eq!(parse_status_range("200"), Some((200, 200)));
        assert_eq!(parse_status_range("2xx"), Some((200, 299)));
        assert_eq!(parse_status_range("any"), Some((100, 599)));
        assert_eq!(parse_status_range("500"), None);
        assert_eq!(parse_status_range("5xx"), None);
        assert_eq!(parse_status_range("abc"), None);
    }

    #[test]
    fn ttl_follows_rules_and_cache_control() {
        let rules = DEFAULT_VALID;
        assert_eq!(ttl_for(&rules, 200, b""), Some(60));
        assert_eq!(ttl_for(&rules, 204, b""), Some(60));
        assert_eq!(ttl_for(&rules, 401, b""), Some(5));
        assert_eq!(ttl_for(&rules, 404, b""), None);
        assert_eq!(ttl_for(&rules, 302, b""), None);
        assert_eq!(ttl_for(&rules, 500, b""), None);
        assert_eq!(ttl_for(&rules, 200, b"private, max-age=10"), Some(10));
        assert_eq!(
            ttl_for(&rules, 200, b"MAX-AGE=3600"),
            Some(60),
            "never raised"
        );
        assert_eq!(ttl_for(&rules, 200, b"max-age=0"), None);
        assert_eq!(ttl_for(&rules, 200, b"no-store"), None);
        assert_eq!(ttl_for(&rules, 200, b"max-age=5, No-Store"), None);
        assert_eq!(ttl_for(&rules, 200, b"max-age=junk"), None);
        let any = [ValidRule {
            min: 100,
            max: 599,
            ttl: 9,
        }];
        assert_eq!(ttl_for(&any, 503, b""), None, "5xx never cached");
    }
}
