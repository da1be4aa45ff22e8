//! The key ring: its file format, and the AES-256-GCM subkey each key is turned into.

use aes_gcm::{Aes256Gcm, KeyInit};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hkdf::Hkdf;
use sha2::Sha256;

const HKDF_INFO: &[u8] = b"ngx-identity sealed v1";

/// Why a key ring file is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    #[error("line {0}: expected \"<key id> <32 bytes in base64>\"")]
    Syntax(usize),
    #[error("line {0}: the key id must be 1 to 32 characters of A-Z, a-z, 0-9, '-' or '_'")]
    KeyId(usize),
    #[error("line {0}: the key is not base64 of exactly 32 bytes")]
    Key(usize),
    #[error("line {0}: key id \"{1}\" appears twice")]
    DuplicateId(usize, String),
    #[error("line {0}: {1}")]
    Derive(usize, DeriveError),
    #[error("it holds no key")]
    Empty,
}

/// HKDF-SHA256 refused to derive the subkey. It does so only for an output longer than
/// 255 blocks, never for the 32 bytes asked here; typed all the same, so no key file can
/// make the module panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the subkey could not be derived")]
pub struct DeriveError;

/// One key of the ring: its id and its AES-256-GCM subkey (never the raw key).
pub struct SealKey {
    pub(super) id: Vec<u8>,
    pub(super) cipher: Aes256Gcm,
}

impl SealKey {
    pub fn new(id: &[u8], raw: &[u8; 32]) -> Result<Self, DeriveError> {
        let mut subkey = [0u8; 32];
        Hkdf::<Sha256>::new(None, raw)
            .expand(HKDF_INFO, &mut subkey)
            .map_err(|_| DeriveError)?;
        Ok(SealKey {
            id: id.to_vec(),
            cipher: Aes256Gcm::new(&subkey.into()),
        })
    }

    pub fn id(&self) -> &[u8] {
        &self.id
    }
}

/// The key ring: the first key seals, every key opens.
pub struct KeyRing {
    pub(super) keys: Vec<SealKey>,
}

fn valid_key_id(id: &[u8]) -> bool {
    (1..=32).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl KeyRing {
    /// Parses a key ring file: one `<key id> <base64 of 32 bytes>` a line; blank lines
    /// and lines starting with `#` are ignored.
    pub fn parse(text: &str) -> Result<Self, KeyRingError> {
        let mut keys: Vec<SealKey> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_ascii_whitespace();
            let (Some(id), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(KeyRingError::Syntax(n));
            };
            if !valid_key_id(id.as_bytes()) {
                return Err(KeyRingError::KeyId(n));
            }
            let raw: [u8; 32] = STANDARD
                .decode(key)
                .or_else(|_| URL_SAFE_NO_PAD.decode(key))
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or(KeyRingError::Key(n))?;
            if keys.iter().any(|k| k.id == id.as_bytes()) {
                return Err(KeyRingError::DuplicateId(n, id.to_string()));
            }
            let key = SealKey::new(id.as_bytes(), &raw).map_err(|e| KeyRingError::Derive(n, e))?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        Ok(KeyRing { keys })
    }

    /// The first key of the ring; `parse` refuses a ring without one.
    pub fn sealing_key(&self) -> &SealKey {
        &self.keys[0]
    }

    pub(super) fn find(&self, id: &[u8]) -> Option<&SealKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}
