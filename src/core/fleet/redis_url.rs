//! `redis://HOST[:PORT][/DB]`, the form `identity_cache_sync` takes.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// A name, an IPv4 address, or an IPv6 address (without its brackets).
    pub host: String,
    pub port: u16,
    pub db: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("it must be redis://host[:port][/db]")]
    Form,
    #[error("TLS (rediss://) is not supported")]
    Tls,
    #[error("a password goes in password=, not in the URL")]
    UserInfo,
    #[error("the port must be from 1 to 65535")]
    Port,
    #[error("the database must be a number")]
    Db,
}

impl RedisUrl {
    pub fn parse(text: &str) -> Result<RedisUrl, UrlError> {
        if text.starts_with("rediss://") {
            return Err(UrlError::Tls);
        }
        let rest = text.strip_prefix("redis://").ok_or(UrlError::Form)?;
        if rest.contains(['?', '#']) {
            return Err(UrlError::Form);
        }
        let (authority, db) = match rest.split_once('/') {
            Some((a, "")) => (a, 0),
            Some((a, db)) => (a, db.parse().map_err(|_| UrlError::Db)?),
            None => (rest, 0),
        };
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(UrlError::Form)?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').ok_or(UrlError::Form)?)),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains([':', ' ']) && !authority.starts_with('[') {
            return Err(UrlError::Form);
        }
        let port = match port {
            None => 6379,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or(UrlError::Port)?,
        };
        Ok(RedisUrl {
            host: host.to_owned(),
            port,
            db,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, port: u16, db: u32) -> Result<RedisUrl, UrlError> {
        Ok(RedisUrl {
            host: host.into(),
            port,
            db,
        })
    }

    #[test]
    fn the_forms_it_takes() {
        assert_eq!(
            RedisUrl::parse("redis://10.0.0.5"),
            url("10.0.0.5", 6379, 0)
        );
        assert_eq!(RedisUrl::parse("redis://r1:6380/3"), url("r1", 6380, 3));
        assert_eq!(RedisUrl::parse("redis://r1/"), url("r1", 6379, 0));
        assert_eq!(RedisUrl::parse("redis://[::1]:7000"), url("::1", 7000, 0));
        assert_eq!(RedisUrl::parse("redis://[::1]/2"), url("::1", 6379, 2));
    }

    #[test]
    fn what_it_refuses() {
        assert_eq!(RedisUrl::parse("rediss://r1"), Err(UrlError::Tls));
        assert_eq!(RedisUrl::parse("http://r1"), Err(UrlError::Form));
        assert_eq!(RedisUrl::parse("redis://"), Err(UrlError::Form));
        assert_eq!(RedisUrl::parse("redis://:6379"), Err(UrlError::Form));
        assert_eq!(RedisUrl::parse("redis://u:p@r1"), Err(UrlError::UserInfo));
        assert_eq!(RedisUrl::parse("redis://r1:0"), Err(UrlError::Port));
        assert_eq!(RedisUrl::parse("redis://r1:65536"), Err(UrlError::Port));
        assert_eq!(RedisUrl::parse("redis://r1:x"), Err(UrlError::Port));
        assert_eq!(RedisUrl::parse("redis://r1/x"), Err(UrlError::Db));
        assert_eq!(RedisUrl::parse("redis://r1?db=1"), Err(UrlError::Form));
        assert_eq!(RedisUrl::parse("redis://[::1"), Err(UrlError::Form));
        assert_eq!(RedisUrl::parse("redis://[::1]x"), Err(UrlError::Form));
    }
}
