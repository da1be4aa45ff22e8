//! The cookies and request headers an `identity_key` reads, from its variables.

/// The cookie names an `identity_key` reads, from its `$cookie_NAME` / `${cookie_NAME}`
/// variables, so `identity_strip_cookie on` knows which cookie is the session.
pub fn cookie_names_in_key(source: &[u8]) -> Vec<Vec<u8>> {
    names_in_key(source, b"cookie_")
}

/// The request headers an `identity_key` reads through `$http_NAME` variables, as the
/// variable names them (lowercase, `_` for `-`), Cookie excepted (its cookies are
/// checked one by one). nginx before 1.23 gives `$http_NAME` the first of several
/// copies, while a user service may read the last: the key would not be the credential
/// the user service authenticated, so a copy sent twice is refused.
pub fn header_names_in_key(source: &[u8]) -> Vec<Vec<u8>> {
    let mut names = names_in_key(source, b"http_");
    names.retain(|n| n.as_slice() != b"cookie");
    names
}

/// Whether header `name` is what `$http_VAR` reads (`var` as `header_names_in_key`
/// gives it): nginx compares case-insensitively, with `-` in the name as `_`.
pub fn header_is_variable(name: &[u8], var: &[u8]) -> bool {
    name.len() == var.len()
        && name.iter().zip(var).all(|(&c, &v)| {
            (if c == b'-' {
                b'_'
            } else {
                c.to_ascii_lowercase()
            }) == v
        })
}

fn names_in_key(source: &[u8], prefix: &[u8]) -> Vec<Vec<u8>> {
    let mut names = Vec::new();
    let mut i = 0;
    while i < source.len() {
        if source[i] != b'$' {
            i += 1;
            continue;
        }
        let braced = source.get(i + 1) == Some(&b'{');
        let start = i + 1 + usize::from(braced);
        let end = source[start..]
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
            .map_or(source.len(), |p| start + p);
        let var = &source[start..end];
        if var.len() > prefix.len() && var[..prefix.len()].eq_ignore_ascii_case(prefix) {
            let name = var[prefix.len()..].to_ascii_lowercase();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        i = end.max(i + 1);
    }
    names
}

/// The variable an nginx value consists of when it is exactly one (`$name` or
/// `${name}`), lowercased as nginx looks variables up. A `$` followed by a digit is a
/// regex capture for nginx's script compiler (`$1abc` is capture 1, then "abc"), never a
/// variable.
pub fn single_variable(source: &[u8]) -> Option<Vec<u8>> {
    let inner = match source {
        [b'$', b'1'..=b'9', ..] => return None,
        [b'$', b'{', inner @ .., b'}'] => inner,
        [b'$', inner @ ..] => inner,
        _ => return None,
    };
    let is_name = !inner.is_empty()
        && inner
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_');
    is_name.then(|| inner.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|n| n.as_bytes().to_vec()).collect()
    }

    #[test]
    fn key_headers() {
        assert_eq!(
            header_names_in_key(b"$http_X_Api_Key${http_authorization}$cookie_s$http_cookie"),
            vec![b"x_api_key".to_vec(), b"authorization".to_vec()]
        );
        assert!(header_names_in_key(b"$cookie_session").is_empty());
        assert!(header_is_variable(b"X-Api-Key", b"x_api_key"));
        assert!(header_is_variable(b"x_api_KEY", b"x_api_key"));
        assert!(!header_is_variable(b"X-Api-Keys", b"x_api_key"));
        assert!(!header_is_variable(b"X.Api.Key", b"x_api_key"));
    }

    #[test]
    fn single_variables() {
        assert_eq!(
            single_variable(b"$identity").as_deref(),
            Some(&b"identity"[..])
        );
        assert_eq!(
            single_variable(b"${Identity_Claim_userId}").as_deref(),
            Some(&b"identity_claim_userid"[..])
        );
        for other in [
            &b"identity"[..],
            b"$",
            b"${}",
            b"${identity",
            b"$identity ",
            b" $identity",
            b"$identity.x",
            b"$identity$identity",
            b"${identity}x",
            b"x$identity",
            b"$1",
            b"$1abc",
            b"$9",
        ] {
            assert_eq!(single_variable(other), None, "{other:?}");
        }
    }

    #[test]
    fn finds_cookie_variables_in_the_key() {
        assert_eq!(cookie_names_in_key(b"$cookie_session"), names(&["session"]));
        assert_eq!(
            cookie_names_in_key(b"${cookie_SID}:$http_authorization$cookie_b"),
            names(&["sid", "b"])
        );
        assert!(cookie_names_in_key(b"$http_authorization").is_empty());
        assert!(cookie_names_in_key(b"$cookie_").is_empty());
        assert!(cookie_names_in_key(b"cookie_session$").is_empty());
    }
}
