//! RESP2, the Redis protocol, as much of it as the fleet link speaks: commands out (arrays
//! of bulk strings) and replies in, parsed incrementally from whatever bytes have arrived.
//!
//! Written here rather than taken from a crate: the link needs a dozen lines of encoder
//! and a bounded, allocation-light parser it can feed partial reads; the RESP crates on
//! crates.io bring codecs for async runtimes and RESP3 the link does not use.

/// A reply, or a pushed pub/sub message (an `Array`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Integer(i64),
    /// `None`: the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None`: the null array.
    Array(Option<Vec<Reply>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    #[error("not RESP: unknown type byte")]
    Type,
    #[error("not RESP: bad length or number")]
    Number,
    #[error("not RESP: missing CRLF")]
    Crlf,
    #[error("a reply is larger than the link accepts")]
    TooLarge,
    #[error("a reply is nested deeper than the link accepts")]
    TooDeep,
}

/// The largest bulk string accepted (a fleet message is under 100 bytes).
pub const MAX_BULK: usize = 1 << 20;
/// The most elements an array may announce (a revocation load can be long).
pub const MAX_ARRAY: usize = 1 << 20;
const MAX_DEPTH: usize = 4;

/// A command as Redis reads it: an array of bulk strings.
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Parses one reply from the start of `buf`: `Ok(None)` if more bytes are needed,
/// otherwise the reply and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
    parse_at(buf, 0)
}

fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, RespError> {
    match memchr::memchr(b'\r', buf) {
        None => Ok(None),
        Some(cr) if cr + 1 >= buf.len() => Ok(None),
        Some(cr) if buf[cr + 1] == b'\n' => Ok(Some((&buf[..cr], cr + 2))),
        Some(_) => Err(RespError::Crlf),
    }
}

fn number(text: &[u8]) -> Result<i64, RespError> {
    let s = std::str::from_utf8(text).map_err(|_| RespError::Number)?;
    if s.is_empty() || s.starts_with('+') {
        return Err(RespError::Number);
    }
    s.parse().map_err(|_| RespError::Number)
}

/// A length: -1 (null) or 0..=max.
fn length(text: &[u8], max: usize) -> Result<Option<usize>, RespError> {
    match number(text)? {
        -1 => Ok(None),
        n if n < 0 => Err(RespError::Number),
        n => {
            let n = usize::try_from(n).map_err(|_| RespError::TooLarge)?;
            if n > max {
                Err(RespError::TooLarge)
            } else {
                Ok(Some(n))
            }
        }
    }
}

fn parse_at(buf: &[u8], depth: usize) -> Result<Option<(Reply, usize)>, RespError> {
    let Some((&kind, rest)) = buf.split_first() else {
        return Ok(None);
    };
    let Some((text, used)) = line(rest)? else {
        return Ok(None);
    };
    let head = 1 + used;
    let reply = match kind {
        b'+' => Reply::Simple(text.to_vec()),
        b'-' => Reply::Error(text.to_vec()),
        b':' => Reply::Integer(number(text)?),
        b'$' => match length(text, MAX_BULK)? {
            None => Reply::Bulk(None),
            Some(n) => {
                let body = &buf[head..];
                if body.len() < n + 2 {
                    return Ok(None);
                }
                if &body[n..n + 2] != b"\r\n" {
                    return Err(RespError::Crlf);
                }
                return Ok(Some((Reply::Bulk(Some(body[..n].to_vec())), head + n + 2)));
            }
        },
        b'*' => match length(text, MAX_ARRAY)? {
            None => Reply::Array(None),
            Some(n) => {
                if depth >= MAX_DEPTH {
                    return Err(RespError::TooDeep);
                }
                // Every element takes at least 3 bytes: no allocation beyond what arrived.
                let mut items = Vec::with_capacity(n.min(buf.len() / 3));
                let mut at = head;
                for _ in 0..n {
                    let Some((item, used)) = parse_at(&buf[at..], depth + 1)? else {
                        return Ok(None);
                    };
                    items.push(item);
                    at += used;
                }
                return Ok(Some((Reply::Array(Some(items)), at)));
            }
        },
        _ => return Err(RespError::Type),
    };
    Ok(Some((reply, head)))
}

impl Reply {
    /// A bulk or simple string's bytes.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Simple(b) | Reply::Bulk(Some(b)) => Some(b),
            _ => None,
        }
    }

    /// A pub/sub push: `[kind, channel, payload]` (`message`, `subscribe`...) or
    /// `[pong, payload]`.
    pub fn push(&self) -> Option<(&[u8], &[Reply])> {
        match self {
            Reply::Array(Some(items)) => {
                let (first, rest) = items.split_first()?;
                Some((first.bytes()?, rest))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Reply {
        let (reply, used) = parse(bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        reply
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(
            command(&[b"PUBLISH", b"ch", b"a\r\nb"]),
            b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$4\r\na\r\nb\r\n"
        );
    }

    #[test]
    fn every_reply_type() {
        assert_eq!(whole(b"+OK\r\n"), Reply::Simple(b"OK".to_vec()));
        assert_eq!(whole(b"-ERR no\r\n"), Reply::Error(b"ERR no".to_vec()));
        assert_eq!(whole(b":-3\r\n"), Reply::Integer(-3));
        assert_eq!(whole(b"$-1\r\n"), Reply::Bulk(None));
        assert_eq!(whole(b"$0\r\n\r\n"), Reply::Bulk(Some(vec![])));
        assert_eq!(whole(b"*-1\r\n"), Reply::Array(None));
        let msg = whole(b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\na\nb\r\n");
        let (kind, rest) = msg.push().unwrap();
        assert_eq!(kind, b"message");
        assert_eq!(rest[1].bytes(), Some(&b"a\nb"[..]));
    }

    #[test]
    fn partial_input_asks_for_more_at_every_cut() {
        let full = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n+OK\r\n";
        let first_len = full.len() - 5;
        for cut in 0..first_len {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
        let (_, used) = parse(full).unwrap().unwrap();
        assert_eq!(used, first_len);
        assert_eq!(
            parse(&full[used..]).unwrap().unwrap().0,
            Reply::Simple(b"OK".to_vec())
        );
    }

    #[test]
    fn malformed_and_oversized_input_is_an_error() {
        assert_eq!(parse(b"!x\r\n"), Err(RespError::Type));
        assert_eq!(parse(b":12a\r\n"), Err(RespError::Number));
        assert_eq!(parse(b":\r\n"), Err(RespError::Number));
        assert_eq!(parse(b"$-2\r\n"), Err(RespError::Number));
        assert_eq!(parse(b"$2\r\nabXY"), Err(RespError::Crlf));
        assert_eq!(parse(b"+OK\rX"), Err(RespError::Crlf));
        assert_eq!(parse(b"$2000000\r\n"), Err(RespError::TooLarge));
        assert_eq!(parse(b"*99999999999\r\n"), Err(RespError::TooLarge));
        assert_eq!(
            parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"),
            Err(RespError::TooDeep)
        );
    }
}
