//! The cookie format: sealing an identity into a cookie value and opening one.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::Nonce;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::keys::{KeyRing, SealKey};
use super::validity::{check_validity, Validity};
use super::{OpenError, MAX_SEALED_LEN, NONCE_LEN, TAG_LEN, VERSION};
use crate::claims::Claims;

/// Why an identity was not sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The cookie would be longer than `MAX_SEALED_LEN`, which the gateway refuses unread.
    #[error("the sealed cookie would be longer than 4096 characters")]
    TooLong,
    /// AES-GCM refused the message: it does so only for one over 64 GiB.
    #[error("AES-GCM refused to encrypt the identity")]
    Encrypt,
}

fn header(key_id: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(2 + key_id.len());
    h.push(VERSION);
    // A key id is 1 to 32 bytes (`KeyRing::parse`), so its length fits the byte.
    h.push(key_id.len() as u8);
    h.extend_from_slice(key_id);
    h
}

fn aad(header: &[u8], cookie_name: &[u8]) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(cookie_name);
    aad
}

/// The length of the cookie `seal_cookie` would make from a `plaintext_len`-byte identity
/// under a key id of `id_len` bytes: unpadded base64 of header, nonce, ciphertext, tag.
fn sealed_len(id_len: usize, plaintext_len: usize) -> usize {
    let raw = (2 + id_len + NONCE_LEN + TAG_LEN).saturating_add(plaintext_len);
    raw.saturating_mul(4).div_ceil(3)
}

/// Seals with no length check: `seal_cookie`'s body, and the tests' way to write a cookie
/// longer than the gateway opens.
pub(super) fn encrypt(
    key: &SealKey,
    cookie_name: &[u8],
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
) -> Result<String, SealError> {
    let header = header(&key.id);
    let aad = aad(&header, cookie_name);
    let sealed = key
        .cipher
        .encrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::Encrypt)?;
    let mut out = header;
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// Seals `plaintext` (a JSON object) for cookie `cookie_name` with the given nonce, which
/// must be random and never reused with the same key. An identity whose cookie the
/// gateway would refuse for its length is refused here.
pub fn seal_cookie(
    key: &SealKey,
    cookie_name: &[u8],
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
) -> Result<String, SealError> {
    if sealed_len(key.id.len(), plaintext.len()) > MAX_SEALED_LEN {
        return Err(SealError::TooLong);
    }
    encrypt(key, cookie_name, nonce, plaintext)
}

/// Opens a sealed cookie value: the JSON identity, if every check passes.
pub fn open(
    ring: &KeyRing,
    cookie_name: &[u8],
    value: &[u8],
    validity: Validity,
) -> Result<Vec<u8>, OpenError> {
    open_with_claims(ring, cookie_name, value, validity).map(|(plain, _)| plain)
}

/// `open`, also returning the identity's claims, parsed once for the checks and reused
/// by `$identity_claim_*`.
pub fn open_with_claims(
    ring: &KeyRing,
    cookie_name: &[u8],
    value: &[u8],
    validity: Validity,
) -> Result<(Vec<u8>, Claims), OpenError> {
    if value.len() > MAX_SEALED_LEN {
        return Err(OpenError::TooLong);
    }
    // Unpadded base64url only: '=' and the standard alphabet's '+' '/' are refused.
    let bytes = URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| OpenError::Base64)?;
    let (&version, rest) = bytes.split_first().ok_or(OpenError::Truncated)?;
    if version != VERSION {
        return Err(OpenError::Version);
    }
    let (&id_len, rest) = rest.split_first().ok_or(OpenError::Truncated)?;
    let id_len = id_len as usize;
    if rest.len() < id_len + NONCE_LEN + TAG_LEN {
        return Err(OpenError::Truncated);
    }
    let (id, rest) = rest.split_at(id_len);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let key = ring.find(id).ok_or(OpenError::UnknownKey)?;
    let header_len = 2 + id_len;
    let aad = aad(&bytes[..header_len], cookie_name);
    let plain = key
        .cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| OpenError::Tag)?;
    let claims = Claims::parse(&plain).map_err(|_| OpenError::NotObject)?;
    check_validity(&plain, &claims, validity)?;
    Ok((plain, claims))
}
