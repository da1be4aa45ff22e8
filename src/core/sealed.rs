//! Sealed session cookies: AES-256-GCM, opened in the gateway with no call at all.
//! Plain safe Rust with no nginx, shared by the module and the `identity-seal` tool.
//!
//! Format, version 1 (the README has it for implementers in other languages):
//!
//! ```text
//! cookie  = base64url-nopad( header || nonce || ciphertext || tag )
//! header  = 0x01 || len(kid) || kid          (kid: 1..=32 bytes of [A-Za-z0-9_-])
//! nonce   = 12 random bytes
//! key     = HKDF-SHA256(ikm = the key ring's 32-byte key, salt = "", info = "ngx-identity sealed v1")
//! aad     = header || cookie name
//! plain   = a UTF-8 JSON object with "exp" (and optionally "iat", "nbf"), seconds since 1970
//! ```
//!
//! `exp`, `iat` and `nbf` are JSON integers from 0 to `MAX_TIME` (no fraction, exponent,
//! sign or string), each at most once; an `iat` more than `IAT_SKEW` seconds ahead of the
//! gateway's clock is refused.
//!
//! The parts: the key ring file and key derivation (`keys`), the cookie format with
//! sealing and opening (`cookie`), and the time claims an identity must carry (`validity`).

mod cookie;
mod keys;
#[cfg(test)]
mod tests;
mod validity;

pub use cookie::{open, open_with_claims, seal_cookie, SealError};
pub use keys::{DeriveError, KeyRing, KeyRingError, SealKey};
pub use validity::{check_identity, Times, Validity};

pub const VERSION: u8 = 1;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Longer cookies are refused before any decoding (browsers cap a cookie near 4 KB).
pub const MAX_SEALED_LEN: usize = 4096;
/// The latest time a time claim may hold: 9999-12-31T23:59:59Z. Anything beyond is not a
/// time but an attempt at "never".
pub const MAX_TIME: i64 = 253_402_300_799;
/// How far ahead of the gateway's clock an issuer's clock may run: an `iat` later than
/// now plus this is refused.
pub const IAT_SKEW: i64 = 60;

/// Why a sealed cookie did not open. Only ever logged at debug level: the client gets
/// the same answer whatever the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("too long")]
    TooLong,
    #[error("not unpadded base64url")]
    Base64,
    #[error("truncated")]
    Truncated,
    #[error("unknown version")]
    Version,
    #[error("unknown key id")]
    UnknownKey,
    #[error("authentication failed")]
    Tag,
    #[error("not a JSON object")]
    NotObject,
    #[error("no numeric exp")]
    NoExpiry,
    #[error("exp, iat or nbf is not an integer from 0 to 253402300799")]
    BadTime,
    #[error("exp, iat or nbf appears more than once")]
    DuplicateClaim,
    #[error("issued in the future")]
    IssuedInFuture,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("older than max_age")]
    TooOld,
    /// Refused by the gateway (`identity_sealed_revoke`), not by the cookie itself.
    #[error("revoked")]
    Revoked,
}
