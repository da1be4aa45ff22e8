//! The user service's response headers that `$identity_answer_header_NAME` reads: which
//! are kept (only the names some configuration references), under which name, how
//! copies are joined, and the checks a kept value passes. No nginx here.
//!
//! A kept answer holds one entry for every referenced name, an empty value for a header
//! the answer did not have: a cached entry then shows which names were collected when it
//! was stored, and an entry stored under a configuration that referenced fewer names is
//! not used for one that references more (`covers`).

use crate::header::{check_header_value, UnsafeValue};

/// The variable prefix; what follows it is the normalised header name.
pub const VARIABLE_PREFIX: &[u8] = b"identity_answer_header_";

/// The longest value kept: the cache stores each in a field with a 16-bit length.
pub const MAX_VALUE_LEN: usize = u16::MAX as usize;

/// A header name as nginx's `$upstream_http_NAME` and `$sent_http_NAME` name it:
/// lowercase, `-` as `_`.
pub fn variable_name(header: &[u8]) -> Vec<u8> {
    header.iter().map(|&b| normalised(b)).collect()
}

fn normalised(b: u8) -> u8 {
    match b {
        b'-' => b'_',
        _ => b.to_ascii_lowercase(),
    }
}

/// Whether `variable_name(header) == normal`, without building the name: every header of
/// every answer is compared with every referenced name. `normal` is a normalised name
/// (from `variable_name`, or a variable's name, which nginx lowercases), so equal bytes
/// are the same name.
fn same_name(header: &[u8], normal: &[u8]) -> bool {
    debug_assert!(normal.iter().all(|&b| normalised(b) == b), "not normalised");
    header.len() == normal.len()
        && (header == normal || header.iter().zip(normal).all(|(&b, &n)| normalised(b) == n))
}

/// The header name a variable names, if it is one of ours (`None` for an empty name).
pub fn referenced_name(variable: &[u8]) -> Option<Vec<u8>> {
    let name = variable.strip_prefix(VARIABLE_PREFIX)?;
    (!name.is_empty()).then(|| variable_name(name))
}

/// Kept headers: (normalised name, value) pairs, one per referenced name.
pub type Kept = Vec<(Vec<u8>, Vec<u8>)>;

/// Why an answer's headers cannot be kept: the answer then counts as a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepError {
    /// A referenced header's value holds a byte no header value may hold.
    Unsafe { name: Vec<u8>, why: UnsafeValue },
    /// The kept values and the body together exceed `identity_max_size`.
    TooLarge,
}

/// Picks the referenced headers out of an answer's response headers. `wanted` holds
/// normalised names (`variable_name`); several copies of one header are joined with
/// `", "`, as nginx 1.23+ joins them for `$upstream_http_NAME`. `budget` is what
/// `identity_max_size` leaves after the body.
pub fn keep<'a>(
    wanted: &[Vec<u8>],
    headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    budget: usize,
) -> Result<Kept, KeepError> {
    let mut kept: Kept = wanted.iter().map(|n| (n.clone(), Vec::new())).collect();
    // Which names had a copy already (a copy may be empty, and a second one is still
    // joined to it): a bit each for the usual handful, a list past 64 (no allocation
    // per answer for the bits).
    let (mut seen_bits, mut seen_more) = (0u64, Vec::new());
    for (name, value) in headers {
        let Some(i) = wanted.iter().position(|n| same_name(name, n)) else {
            continue;
        };
        if let Err(why) = check_header_value(value) {
            return Err(KeepError::Unsafe {
                name: variable_name(name),
                why,
            });
        }
        let seen = match u32::try_from(i).ok().and_then(|i| 1u64.checked_shl(i)) {
            Some(bit) => {
                let seen = seen_bits & bit != 0;
                seen_bits |= bit;
                seen
            }
            None if seen_more.contains(&i) => true,
            None => {
                seen_more.push(i);
                false
            }
        };
        let slot = &mut kept[i].1;
        if seen {
            slot.extend_from_slice(b", ");
        }
        slot.extend_from_slice(value);
    }
    let total: usize = kept.iter().map(|(_, v)| v.len()).sum();
    if total > budget || kept.iter().any(|(_, v)| v.len() > MAX_VALUE_LEN) {
        return Err(KeepError::TooLarge);
    }
    Ok(kept)
}

/// The kept value of the header a variable suffix names (already lowercase: nginx
/// lowercases variable names); `None` when it was not collected.
pub fn value<'a>(kept: &'a [(Vec<u8>, Vec<u8>)], suffix: &[u8]) -> Option<&'a [u8]> {
    kept.iter()
        .find(|(n, _)| same_name(suffix, n))
        .map(|(_, v)| v.as_slice())
}

/// Whether an answer kept every name `wanted` lists (a cached entry stored under the
/// current configuration, or one that referenced more).
pub fn covers(kept: &[(Vec<u8>, Vec<u8>)], wanted: &[Vec<u8>]) -> bool {
    wanted.iter().all(|w| kept.iter().any(|(n, _)| n == w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn names_are_normalised_as_nginx_does() {
        assert_eq!(
            variable_name(b"X-Auth-Request-User"),
            b"x_auth_request_user"
        );
        assert_eq!(variable_name(b"Remote-Groups"), b"remote_groups");
        assert_eq!(variable_name(b"x_weird.Name"), b"x_weird.name");
        assert_eq!(
            referenced_name(b"identity_answer_header_remote_user").as_deref(),
            Some(&b"remote_user"[..])
        );
        assert_eq!(referenced_name(b"identity_answer_header_"), None);
        assert_eq!(referenced_name(b"identity_claim_x"), None);
    }

    #[test]
    fn a_name_matches_exactly_when_its_variable_name_is_equal() {
        for b in 0..=255u8 {
            // `normal` is always a normalised name.
            for n in (0..=255u8).filter(|&n| normalised(n) == n) {
                let header = [b'X', b, b'-', b'y'];
                let normal = [b'x', n, b'_', b'y'];
                assert_eq!(
                    same_name(&header, &normal),
                    variable_name(&header) == normal,
                    "{b:#x} against {n:#x}"
                );
            }
        }
        assert!(same_name(b"X-Auth-User", b"x_auth_user"));
        assert!(same_name(b"x_auth_user", b"x_auth_user"));
        for b in 0..=255u8 {
            let normal = [b'x', normalised(b)];
            assert!(same_name(&normal, &normal), "{b:#x}");
        }
        assert!(!same_name(b"X-Auth-User", b"x_auth_use"));
    }

    #[test]
    fn keeps_only_referenced_names_with_empty_values_for_absent_ones() {
        let wanted = names(&["remote_user", "remote_email"]);
        let headers: [(&[u8], &[u8]); 3] = [
            (b"Remote-User", b"alice"),
            (b"Remote-Groups", b"admins"),
            (b"Content-Type", b"text/plain"),
        ];
        let kept = keep(&wanted, headers, 100).unwrap();
        assert_eq!(value(&kept, b"remote_user"), Some(&b"alice"[..]));
        assert_eq!(value(&kept, b"remote_email"), Some(&b""[..]));
        assert_eq!(value(&kept, b"remote_groups"), None);
        assert!(covers(&kept, &wanted));
        assert!(!covers(&kept, &names(&["remote_user", "remote_name"])));
    }

    #[test]
    fn copies_are_joined_and_names_match_in_any_case() {
        let wanted = names(&["x_group"]);
        let headers: [(&[u8], &[u8]); 2] = [(b"X-Group", b"a"), (b"x-GROUP", b"b")];
        let kept = keep(&wanted, headers, 100).unwrap();
        assert_eq!(value(&kept, b"x_group"), Some(&b"a, b"[..]));
    }

    #[test]
    fn copies_are_joined_past_the_64th_name_and_an_empty_first_copy_counts() {
        let list: Vec<String> = (0..70).map(|i| format!("h{i}")).collect();
        let wanted = names(&list.iter().map(String::as_str).collect::<Vec<_>>());
        let headers: [(&[u8], &[u8]); 8] = [
            (b"H3", b""),
            (b"H63", b"a"),
            (b"H64", b"b"),
            (b"H69", b"c"),
            (b"H3", b"d"),
            (b"H63", b"e"),
            (b"H64", b"f"),
            (b"H69", b"g"),
        ];
        let kept = keep(&wanted, headers, 100).unwrap();
        assert_eq!(value(&kept, b"h3"), Some(&b", d"[..]));
        assert_eq!(value(&kept, b"h63"), Some(&b"a, e"[..]));
        assert_eq!(value(&kept, b"h64"), Some(&b"b, f"[..]));
        assert_eq!(value(&kept, b"h69"), Some(&b"c, g"[..]));
        assert_eq!(value(&kept, b"h65"), Some(&b""[..]));
    }

    #[test]
    fn unsafe_values_and_oversize_are_refused() {
        let wanted = names(&["remote_user"]);
        for bad in [&b"al\x01ice"[..], b"a\rb", b"a\nb", b"a\0b"] {
            let err = keep(&wanted, [(&b"Remote-User"[..], bad)], 100).unwrap_err();
            assert!(matches!(err, KeepError::Unsafe { ref name, .. } if name == b"remote_user"));
        }
        // An unreferenced header is not looked at.
        assert!(keep(&wanted, [(&b"Other"[..], &b"a\x01"[..])], 100).is_ok());
        // UTF-8 and tabs pass, as for identity_header values.
        assert!(keep(&wanted, [(&b"Remote-User"[..], "Zoë\t".as_bytes())], 100).is_ok());
        assert_eq!(
            keep(&wanted, [(&b"Remote-User"[..], &b"alice"[..])], 4),
            Err(KeepError::TooLarge)
        );
        let huge = vec![b'a'; MAX_VALUE_LEN + 1];
        assert_eq!(
            keep(&wanted, [(&b"Remote-User"[..], &huge[..])], usize::MAX),
            Err(KeepError::TooLarge)
        );
    }
}
