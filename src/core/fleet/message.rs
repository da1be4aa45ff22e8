//! The messages gateways publish: a purge names a credential's entries, a revocation a
//! sealed cookie until its `exp`. Removal is the only effect either can have.
//!
//! Layout: version (1), kind (`P` or `R`), the 32-byte digest, for `R` the exp (8 bytes,
//! big-endian), then, in a keyed fleet, an HMAC-SHA256 tag of all the bytes before it.

use hmac::Mac;

use super::FleetKey;

const VERSION: u8 = 1;
const DIGEST: usize = 32;
const TAG: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    Purge { digest: [u8; 32] },
    Revoke { digest: [u8; 32], exp: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("unknown version or kind")]
    Unknown,
    #[error("wrong length (a fleet with and one without secret= share the channel?)")]
    Length,
    #[error("bad tag: not from a gateway with this fleet's secret")]
    Tag,
}

impl FleetKey {
    pub fn encode(&self, message: &Message) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + DIGEST + 8 + TAG);
        out.push(VERSION);
        match message {
            Message::Purge { digest } => {
                out.push(b'P');
                out.extend_from_slice(digest);
            }
            Message::Revoke { digest, exp } => {
                out.push(b'R');
                out.extend_from_slice(digest);
                out.extend_from_slice(&exp.to_be_bytes());
            }
        }
        if let Some(key) = self.tag_key() {
            let mut mac = key.clone();
            mac.update(&out);
            out.extend_from_slice(&mac.finalize().into_bytes());
        }
        out
    }

    /// Reads a message; in a keyed fleet its tag is checked in constant time first.
    pub fn decode(&self, bytes: &[u8]) -> Result<Message, MessageError> {
        let body_len = match bytes {
            [VERSION, b'P', ..] => 2 + DIGEST,
            [VERSION, b'R', ..] => 2 + DIGEST + 8,
            _ => return Err(MessageError::Unknown),
        };
        let tag_len = if self.is_keyed() { TAG } else { 0 };
        if bytes.len() != body_len + tag_len {
            return Err(MessageError::Length);
        }
        let (body, tag) = bytes.split_at(body_len);
        if let Some(key) = self.tag_key() {
            let mut mac = key.clone();
            mac.update(body);
            mac.verify_slice(tag).map_err(|_| MessageError::Tag)?;
        }
        let mut digest = [0u8; DIGEST];
        digest.copy_from_slice(&body[2..2 + DIGEST]);
        if body[1] == b'P' {
            return Ok(Message::Purge { digest });
        }
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&body[2 + DIGEST..]);
        Ok(Message::Revoke {
            digest,
            exp: u64::from_be_bytes(exp),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages() -> [Message; 2] {
        [
            Message::Purge { digest: [7; 32] },
            Message::Revoke {
                digest: [9; 32],
                exp: 1_900_000_000,
            },
        ]
    }

    #[test]
    fn round_trips_keyed_and_public() {
        for key in [FleetKey::public(), FleetKey::from_secret(&[3; 40]).unwrap()] {
            for m in messages() {
                assert_eq!(key.decode(&key.encode(&m)), Ok(m));
            }
        }
    }

    #[test]
    fn a_keyed_fleet_refuses_every_tampered_byte_and_foreign_tags() {
        let key = FleetKey::from_secret(&[3; 32]).unwrap();
        let other = FleetKey::from_secret(&[4; 32]).unwrap();
        for m in messages() {
            let good = key.encode(&m);
            for i in 0..good.len() {
                let mut bad = good.clone();
                bad[i] ^= 0x01;
                assert!(key.decode(&bad).is_err(), "byte {i}");
            }
            assert_eq!(key.decode(&other.encode(&m)), Err(MessageError::Tag));
            // Untagged (a public gateway's) or truncated: refused.
            assert_eq!(
                key.decode(&FleetKey::public().encode(&m)),
                Err(MessageError::Length)
            );
            assert_eq!(
                key.decode(&good[..good.len() - 1]),
                Err(MessageError::Length)
            );
        }
    }

    #[test]
    fn a_public_fleet_refuses_tagged_and_malformed_messages() {
        let public = FleetKey::public();
        let keyed = FleetKey::from_secret(&[3; 32]).unwrap();
        for m in messages() {
            assert_eq!(public.decode(&keyed.encode(&m)), Err(MessageError::Length));
        }
        assert_eq!(public.decode(b""), Err(MessageError::Unknown));
        assert_eq!(public.decode(&[2, b'P']), Err(MessageError::Unknown));
        assert_eq!(public.decode(&[1, b'X']), Err(MessageError::Unknown));
        assert_eq!(public.decode(&[1, b'P', 0]), Err(MessageError::Length));
    }
}
