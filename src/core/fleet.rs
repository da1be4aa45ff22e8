//! LEAD'S TEMPORARY STUB: replaced by the fleetcore branch on merge.
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Clone)]
pub struct FleetKey {
    digest: [u8; 32],
    tag: Option<[u8; 32]>,
}
#[derive(Debug, thiserror::Error)]
pub enum FleetKeyError {
    #[error("is shorter than 32 bytes")]
    Short,
}
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("malformed")]
    Malformed,
}
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    Purge { digest: [u8; 32] },
    Revoke { digest: [u8; 32], exp: u64 },
}
fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any length");
    for p in parts {
        m.update(&(p.len() as u64).to_le_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}
impl FleetKey {
    pub fn public() -> Self {
        FleetKey {
            digest: [7; 32],
            tag: None,
        }
    }
    pub fn from_secret(bytes: &[u8]) -> Result<Self, FleetKeyError> {
        if bytes.len() < 32 {
            return Err(FleetKeyError::Short);
        }
        Ok(FleetKey {
            digest: mac(bytes, &[b"d"]),
            tag: Some(mac(bytes, &[b"t"])),
        })
    }
    pub fn is_keyed(&self) -> bool {
        self.tag.is_some()
    }
    pub fn credential_digest(&self, credential: &[u8], passed: &[(&[u8], &[u8])]) -> [u8; 32] {
        let mut parts: Vec<Vec<u8>> = vec![b"c".to_vec(), credential.to_vec()];
        for (n, v) in passed {
            parts.push(n.to_ascii_lowercase());
            parts.push(v.to_vec());
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        mac(&self.digest, &refs)
    }
    pub fn sealed_digest(&self, cookie_value: &[u8]) -> [u8; 32] {
        mac(&self.digest, &[b"s", cookie_value])
    }
    pub fn encode(&self, m: &Message) -> Vec<u8> {
        let mut out = vec![1u8];
        match m {
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
        if let Some(t) = &self.tag {
            let tag = mac(t, &[&out]);
            out.extend_from_slice(&tag);
        }
        out
    }
    pub fn decode(&self, b: &[u8], _now: u64) -> Result<Message, MessageError> {
        let tl = if self.tag.is_some() { 32 } else { 0 };
        let body_len = match b.get(1) {
            Some(b'P') => 34,
            Some(b'R') => 42,
            _ => return Err(MessageError::Malformed),
        };
        if b.len() != body_len + tl || b[0] != 1 {
            return Err(MessageError::Malformed);
        }
        if let Some(t) = &self.tag {
            if mac(t, &[&b[..body_len]]) != b[body_len..] {
                return Err(MessageError::Malformed);
            }
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&b[2..34]);
        Ok(if b[1] == b'P' {
            Message::Purge { digest }
        } else {
            let mut e = [0u8; 8];
            e.copy_from_slice(&b[34..42]);
            Message::Revoke {
                digest,
                exp: u64::from_be_bytes(e),
            }
        })
    }
}
pub struct RedisUrl {
    pub host: String,
    pub port: u16,
    pub db: u32,
}
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("bad url")]
    Bad,
}
impl RedisUrl {
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        let rest = s.strip_prefix("redis://").ok_or(UrlError::Bad)?;
        let (hp, db) = rest.split_once('/').unwrap_or((rest, "0"));
        let (h, p) = hp.rsplit_once(':').unwrap_or((hp, "6379"));
        Ok(RedisUrl {
            host: h.into(),
            port: p.parse().map_err(|_| UrlError::Bad)?,
            db: db.parse().map_err(|_| UrlError::Bad)?,
        })
    }
}
