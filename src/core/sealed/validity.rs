//! The time claims a sealed identity carries, and the limits they must meet.

use super::{OpenError, IAT_SKEW, MAX_TIME};
use crate::claims::Claims;

/// Time limits a sealed identity must meet.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Seconds since 1970.
    pub now: i64,
    /// `max_age=`: an `iat` older than this, or, without `iat`, an `exp` further away than
    /// this, is refused.
    pub max_age: Option<i64>,
}

/// The time claims of an identity, checked for shape only: `exp` present, and each of
/// `exp`, `iat`, `nbf` at most once and an integer from 0 to `MAX_TIME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub exp: i64,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
}

impl Times {
    pub fn read(plain: &[u8], claims: &Claims) -> Result<Self, OpenError> {
        Ok(Times {
            exp: time_claim(plain, claims, "exp")?.ok_or(OpenError::NoExpiry)?,
            iat: time_claim(plain, claims, "iat")?,
            nbf: time_claim(plain, claims, "nbf")?,
        })
    }
}

/// Checks an identity before it is sealed, as the gateway will when it opens it.
pub fn check_identity(plain: &[u8]) -> Result<Times, OpenError> {
    let claims = Claims::parse(plain).map_err(|_| OpenError::NotObject)?;
    Times::read(plain, &claims)
}

fn time_claim(plain: &[u8], claims: &Claims, name: &str) -> Result<Option<i64>, OpenError> {
    let mut copies = claims.raw_each(plain, name);
    match (copies.next(), copies.next()) {
        (None, _) => Ok(None),
        (Some(raw), None) => parse_time(raw).map(Some).ok_or(OpenError::BadTime),
        (Some(_), Some(_)) => Err(OpenError::DuplicateClaim),
    }
}

/// A JSON integer from 0 to `MAX_TIME`, nothing else: `1e300`, `1.5`, `-1`, `"1"` and a
/// number past 64 bits are all refused, never rounded or saturated into "never".
fn parse_time(raw: &str) -> Option<i64> {
    if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i64>().ok().filter(|t| *t <= MAX_TIME)
}

/// Whether an opened identity is valid at `validity.now`.
pub(super) fn check_validity(
    plain: &[u8],
    claims: &Claims,
    validity: Validity,
) -> Result<(), OpenError> {
    let times = Times::read(plain, claims)?;
    let now = validity.now;
    if now >= times.exp {
        return Err(OpenError::Expired);
    }
    if times.nbf.is_some_and(|nbf| now < nbf) {
        return Err(OpenError::NotYetValid);
    }
    if times
        .iat
        .is_some_and(|iat| iat > now.saturating_add(IAT_SKEW))
    {
        return Err(OpenError::IssuedInFuture);
    }
    if let Some(max_age) = validity.max_age {
        // Both times are within 0..=MAX_TIME, so these differences cannot overflow.
        let too_old = match times.iat {
            Some(iat) => now.saturating_sub(iat) > max_age,
            None => times.exp.saturating_sub(now) > max_age,
        };
        if too_old {
            return Err(OpenError::TooOld);
        }
    }
    Ok(())
}
