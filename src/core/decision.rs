//! What a user-service answer means for the client's request: pure policy, no nginx.
//! The answer may come from the subrequest or, later, from a cache; both go through here.

/// What the user service said, however it was obtained.
#[derive(Default)]
pub struct Answer {
    /// The HTTP status; 0 when there was none.
    pub status: u16,
    /// Why the answer cannot be used whatever its status, if it cannot.
    pub failure: Option<&'static str>,
    pub body: Vec<u8>,
    pub content_type: Vec<u8>,
    /// Headers relayed to the client with a refusal (name, value).
    pub relay_headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The user service's Cache-Control, which may shorten how long this is cached.
    pub cache_control: Vec<u8>,
    /// The user service's `Vary` (comma-separated header names): the request headers, as
    /// the subrequest carried them, that its answer depends on.
    pub vary: Vec<u8>,
    /// For a cached answer with `Vary`: the zone's keyed digest of those headers' values
    /// in the request it answered (`cache_entry::vary_input`).
    pub vary_digest: Vec<u8>,
    /// For a 2xx: the response headers `$identity_answer_header_NAME` reads, one entry
    /// per referenced name (normalised name, value; empty when absent). See
    /// `answer_headers`.
    pub answer_headers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// `$identity_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityStatus {
    /// The module is off here.
    Bypass,
    /// The user service accepted the credential.
    Ok,
    /// No credential, passed on without identity.
    Anonymous,
    /// The user service refused the credential (3xx or 4xx).
    Denied,
    /// The user service gave no usable answer.
    Error,
    /// Accepted, from the cache.
    Hit,
    /// Accepted, from the user service, and cached when allowed.
    Miss,
    /// Accepted from an expired entry, because the user service is failing.
    Stale,
    /// Accepted from another request's call, waited for.
    Coalesced,
    /// Accepted, opened from a sealed cookie with no call.
    Sealed,
    /// Refused by `identity_require`: a value was empty, `0` or `false`, or there was
    /// no identity where one is required.
    Forbidden,
}

impl IdentityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityStatus::Bypass => "BYPASS",
            IdentityStatus::Ok => "OK",
            IdentityStatus::Anonymous => "ANONYMOUS",
            IdentityStatus::Denied => "DENIED",
            IdentityStatus::Error => "ERROR",
            IdentityStatus::Hit => "HIT",
            IdentityStatus::Miss => "MISS",
            IdentityStatus::Stale => "STALE",
            IdentityStatus::Coalesced => "COALESCED",
            IdentityStatus::Sealed => "SEALED",
            IdentityStatus::Forbidden => "FORBIDDEN",
        }
    }
}

/// `$identity_reason`: why a request has no accepted identity, as a short stable word.
/// Never carries a value from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The request carries no credential (or the module is off where one is required).
    NoCredential,
    /// The credential cookie or key header was sent more than once.
    DuplicateCredential,
    /// The user service refused the credential (3xx or 4xx).
    Denied,
    /// An `identity_require` value was empty, `0` or `false`.
    Forbidden,
    /// nginx timed out calling the user service (its 504).
    Timeout,
    /// nginx could not reach the user service or read its answer (its 502).
    Unreachable,
    /// The user service answered 5xx (or a status outside 200-599), or the call failed.
    ServiceError,
    /// The user service's body is larger than `identity_max_size`.
    Oversize,
    /// The user service's answer ended before its last byte.
    Incomplete,
    /// `$identity_claim_*` was used and the body is not a JSON object.
    InvalidBody,
    /// An `identity_header` value holds a byte a header may not carry.
    UnsafeValue,
    /// A sealed cookie was present but could not be opened (tampered, expired...).
    SealedInvalid,
    /// A sealed cookie that opens was revoked (`identity_sealed_revoke`, or the fleet).
    Revoked,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoCredential => "no_credential",
            Reason::DuplicateCredential => "duplicate_credential",
            Reason::Denied => "denied",
            Reason::Forbidden => "forbidden",
            Reason::Timeout => "timeout",
            Reason::Unreachable => "unreachable",
            Reason::ServiceError => "service_error",
            Reason::Oversize => "oversize",
            Reason::Incomplete => "incomplete",
            Reason::InvalidBody => "invalid_body",
            Reason::UnsafeValue => "unsafe_value",
            Reason::SealedInvalid => "sealed_invalid",
            Reason::Revoked => "revoked",
        }
    }

    /// Why a user-service answer gives no identity: `failure` is what made it unusable
    /// (if anything did), else its status decides; `None` for a 2xx.
    pub fn of_answer(status: u16, failure: Option<Reason>) -> Option<Reason> {
        match status {
            _ if failure.is_some() => failure,
            200..=299 => None,
            300..=499 => Some(Reason::Denied),
            _ => Some(Reason::ServiceError),
        }
    }

    /// The reason that goes with a decided `$identity_status`: `cause` is what was found
    /// wrong on the way (a failed call, a bad cookie...), else the status's own reason.
    /// `None` for an accepted identity (or the module off).
    pub fn of_status(status: IdentityStatus, cause: Option<Reason>) -> Option<Reason> {
        use IdentityStatus as S;
        match status {
            S::Anonymous => cause.or(Some(Reason::NoCredential)),
            S::Denied => cause.or(Some(Reason::Denied)),
            S::Error => cause.or(Some(Reason::ServiceError)),
            S::Forbidden => Some(Reason::Forbidden),
            S::Bypass | S::Ok | S::Hit | S::Miss | S::Stale | S::Coalesced | S::Sealed => None,
        }
    }

    /// What made a subrequest's answer unusable, from one pass of its completion:
    /// `nginx_status` is the status nginx itself finalized it with (a special response,
    /// e.g. its 504 on a timeout), if it did.
    pub fn of_call(
        nginx_status: Option<u16>,
        overflow: bool,
        failed: bool,
        complete: bool,
    ) -> Option<Reason> {
        if overflow {
            return Some(Reason::Oversize);
        }
        match nginx_status {
            Some(504) => return Some(Reason::Timeout),
            Some(502) => return Some(Reason::Unreachable),
            _ => {}
        }
        if failed {
            Some(Reason::ServiceError)
        } else if !complete {
            Some(Reason::Incomplete)
        } else {
            None
        }
    }

    /// nginx may complete a subrequest twice (its error page after its own failure):
    /// what nginx said on the first pass (timeout, unreachable, oversize) is the cause.
    pub fn over_passes(earlier: Option<Reason>, now: Option<Reason>) -> Option<Reason> {
        match earlier {
            Some(Reason::Timeout | Reason::Unreachable | Reason::Oversize) => earlier,
            _ => now,
        }
    }
}

/// Whether an evaluated `identity_require` value lets the request through: not empty,
/// not `0` and not `false` (so a JSON boolean claim works as written).
pub fn required_value_passes(value: &[u8]) -> bool {
    !(value.is_empty() || value == b"0" || value == b"false")
}

/// `identity_on_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Respond(u16),
    Pass,
}

/// What the access handler does with the client's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go upstream with identity headers.
    Allow,
    /// Go upstream without identity.
    PassWithout(IdentityStatus),
    /// Answer the client with the user service's status, body and chosen headers.
    Relay(u16),
    /// Answer the client with this status (nginx builds the page; error_page applies).
    Respond(u16, IdentityStatus),
}

/// The policy in force for one request.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub anonymous: bool,
    pub on_error: OnError,
}

impl Policy {
    /// The request carries no credential: no call is made.
    pub fn no_credential(&self) -> Verdict {
        if self.anonymous {
            Verdict::PassWithout(IdentityStatus::Anonymous)
        } else {
            Verdict::Respond(401, IdentityStatus::Anonymous)
        }
    }

    /// The user service answered with `status`; `failed` is set when the answer could
    /// not be used whatever its status (unreachable, over the size limit, cut short).
    pub fn answer(&self, status: u16, failed: bool) -> Verdict {
        match status {
            _ if failed => self.error(),
            200..=299 => Verdict::Allow,
            300..=499 if self.anonymous => Verdict::PassWithout(IdentityStatus::Denied),
            300..=499 => Verdict::Relay(status),
            _ => self.error(),
        }
    }

    /// The user service could not give an answer, or its answer could not be used.
    pub fn error(&self) -> Verdict {
        match self.on_error {
            OnError::Pass => Verdict::PassWithout(IdentityStatus::Error),
            OnError::Respond(code) => Verdict::Respond(code, IdentityStatus::Error),
        }
    }
}

/// Which of the user service's response headers the client gets with a relayed status:
/// what the status needs (a 401's challenges, a redirect's target, a 429's delay) and
/// `Set-Cookie`, so a refusal can clear an expired session's cookie. Nothing else: the
/// user service's other headers describe its own response, not the gateway's.
pub fn relayed_header(status: u16, name: &[u8]) -> bool {
    if name.eq_ignore_ascii_case(b"www-authenticate") {
        status == 401
    } else if name.eq_ignore_ascii_case(b"retry-after") {
        status == 429 || status == 503
    } else if name.eq_ignore_ascii_case(b"location") {
        (300..400).contains(&status)
    } else if name.eq_ignore_ascii_case(b"set-cookie") {
        (300..500).contains(&status)
    } else {
        false
    }
}

/// Whether every copy of a relayed header crosses (several challenges, several cookies)
/// or only the first (a client must not get two `Location`s).
pub fn relayed_in_every_copy(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"www-authenticate") || name.eq_ignore_ascii_case(b"set-cookie")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOSED: Policy = Policy {
        anonymous: false,
        on_error: OnError::Respond(503),
    };
    const OPEN: Policy = Policy {
        anonymous: true,
        on_error: OnError::Pass,
    };

    #[test]
    fn two_hundreds_allow() {
        for s in [200, 204, 299] {
            assert_eq!(CLOSED.answer(s, false), Verdict::Allow);
        }
    }

    #[test]
    fn redirects_and_client_errors_are_relayed_unless_anonymous() {
        for s in [302, 401, 403, 404, 429] {
            assert_eq!(CLOSED.answer(s, false), Verdict::Relay(s));
            assert_eq!(
                OPEN.answer(s, false),
                Verdict::PassWithout(IdentityStatus::Denied)
            );
        }
    }

    #[test]
    fn failures_follow_on_error() {
        for s in [0, 100, 500, 502, 504, 600] {
            assert_eq!(
                CLOSED.answer(s, false),
                Verdict::Respond(503, IdentityStatus::Error)
            );
            assert_eq!(
                OPEN.answer(s, false),
                Verdict::PassWithout(IdentityStatus::Error)
            );
        }
        assert_eq!(
            CLOSED.answer(200, true),
            Verdict::Respond(503, IdentityStatus::Error)
        );
    }

    #[test]
    fn missing_credential() {
        assert_eq!(
            CLOSED.no_credential(),
            Verdict::Respond(401, IdentityStatus::Anonymous)
        );
        assert_eq!(
            OPEN.no_credential(),
            Verdict::PassWithout(IdentityStatus::Anonymous)
        );
    }

    #[test]
    fn reasons() {
        assert_eq!(Reason::of_answer(200, None), None);
        assert_eq!(Reason::of_answer(401, None), Some(Reason::Denied));
        assert_eq!(Reason::of_answer(302, None), Some(Reason::Denied));
        assert_eq!(Reason::of_answer(500, None), Some(Reason::ServiceError));
        assert_eq!(Reason::of_answer(0, None), Some(Reason::ServiceError));
        assert_eq!(
            Reason::of_answer(200, Some(Reason::Oversize)),
            Some(Reason::Oversize)
        );
        assert_eq!(
            Reason::of_call(Some(504), false, false, true),
            Some(Reason::Timeout)
        );
        assert_eq!(
            Reason::of_call(Some(502), false, false, false),
            Some(Reason::Unreachable)
        );
        assert_eq!(
            Reason::of_call(None, true, false, true),
            Some(Reason::Oversize)
        );
        assert_eq!(
            Reason::of_call(None, false, false, false),
            Some(Reason::Incomplete)
        );
        assert_eq!(
            Reason::of_call(None, false, true, true),
            Some(Reason::ServiceError)
        );
        assert_eq!(Reason::of_call(Some(500), false, false, true), None);
        assert_eq!(
            Reason::over_passes(Some(Reason::Timeout), None),
            Some(Reason::Timeout)
        );
        assert_eq!(Reason::over_passes(Some(Reason::Incomplete), None), None);
        assert_eq!(Reason::ServiceError.as_str(), "service_error");
        assert_eq!(
            Reason::of_status(IdentityStatus::Error, Some(Reason::Timeout)),
            Some(Reason::Timeout)
        );
        assert_eq!(
            Reason::of_status(IdentityStatus::Anonymous, None),
            Some(Reason::NoCredential)
        );
        assert_eq!(Reason::of_status(IdentityStatus::Hit, None), None);
    }

    #[test]
    fn required_values() {
        for v in [&b""[..], b"0", b"false"] {
            assert!(!required_value_passes(v));
        }
        for v in [&b"1"[..], b"true", b"admin", b"00", b"False", b" "] {
            assert!(required_value_passes(v));
        }
    }

    #[test]
    fn relayed_headers_depend_on_status() {
        assert!(relayed_header(401, b"www-authenticate"));
        assert!(!relayed_header(403, b"www-authenticate"));
        assert!(relayed_header(429, b"retry-after"));
        assert!(relayed_header(302, b"location"));
        assert!(!relayed_header(401, b"location"));
        assert!(relayed_header(401, b"set-cookie"));
        assert!(relayed_header(302, b"Set-Cookie"));
        assert!(!relayed_header(200, b"set-cookie"));
        assert!(!relayed_header(503, b"set-cookie"));
        assert!(!relayed_header(302, b"x-internal"));
        assert!(relayed_header(401, b"WWW-Authenticate"));
    }

    #[test]
    fn challenges_and_cookies_cross_in_every_copy() {
        assert!(relayed_in_every_copy(b"WWW-Authenticate"));
        assert!(relayed_in_every_copy(b"set-cookie"));
        assert!(!relayed_in_every_copy(b"location"));
        assert!(!relayed_in_every_copy(b"retry-after"));
    }
}
