//! The location configuration's value types, its errors and the accessors the request
//! handlers read. The struct itself and its directives are declared in `directives.rs`.

use core::ptr;

use ngx::ffi::{ngx_http_complex_value_t, ngx_shm_zone_t, ngx_str_t};

use crate::cache::{CacheZone, LockPolicy};
use crate::cache_entry::ValidRule;
use crate::decision::Policy;

pub use crate::directives::{defaults, IdentityConf};

/// A configuration mistake, reported by `nginx -t` as `"directive" reason`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("is duplicate")]
    Duplicate,
    #[error("invalid value \"{0}\": {1}")]
    InvalidValue(String, &'static str),
    #[error("invalid header name \"{0}\": it must be an HTTP token")]
    HeaderName(String),
    #[error("the value could not be compiled")]
    ComplexValue,
    #[error("out of memory")]
    NoMemory,
    #[error("zone \"{0}\" is already defined")]
    DuplicateZone(String),
    #[error(transparent)]
    Claims(#[from] crate::assertion::SpecError),
}

/// A mistake found while merging a location with its enclosing levels, reported by
/// `nginx -t` as is.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("default \"identity_key {key}\": {source}")]
    DefaultKey {
        key: &'static str,
        source: ConfigError,
    },
    #[error("\"identity_sealed\" needs \"identity_sealed_keys\" in the http block")]
    SealedWithoutKeys,
    #[error(
        "\"identity_strip_cookie on\" needs an \"identity_key\" that reads a \
         $cookie_NAME variable, to know which cookie is the session"
    )]
    StripCookieWithoutCookieKey,
    #[error("\"{0}\" needs \"identity_assertion_key\" in the http block")]
    AssertionWithoutKeys(&'static str),
    #[error("\"identity_assertion {0}\": an identity_header sets \"{0}\" too")]
    AssertionHeaderTaken(String),
}

/// One `identity_header name value`.
#[derive(Clone)]
pub struct IdentityHeader {
    pub name: Vec<u8>,
    pub lowcase_name: Vec<u8>,
    /// Whether nginx keeps a shortcut in `headers_in` for this name (decided once here,
    /// not on every request: `headers_in::is_indexed`).
    pub indexed: bool,
    pub value: *mut ngx_http_complex_value_t,
    /// Where the value comes from, when it can be read without nginx's script engine.
    pub source: HeaderSource,
}

/// What an `identity_header` value is made of.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum HeaderSource {
    /// Exactly `$identity`: the identity's bytes, read in place.
    Identity,
    /// Exactly `$identity_claim_NAME`: that claim (NAME lowercased, as nginx gives it to
    /// the variable), read in place when it needs no decoding.
    Claim(String),
    /// Exactly `$identity_answer_header_NAME`: that kept answer header (NAME lowercased,
    /// as nginx gives it to the variable), read in place.
    AnswerHeader(Vec<u8>),
    /// Anything else, through `value`.
    Complex,
}

impl HeaderSource {
    pub fn of(value: &[u8]) -> HeaderSource {
        let Some(var) = crate::header::single_variable(value) else {
            return HeaderSource::Complex;
        };
        if var == b"identity" {
            return HeaderSource::Identity;
        }
        if let Some(claim) = var.strip_prefix(b"identity_claim_".as_slice()) {
            // A variable name is ASCII letters, digits and '_'.
            return HeaderSource::Claim(String::from_utf8_lossy(claim).into_owned());
        }
        match var.strip_prefix(crate::answer_headers::VARIABLE_PREFIX) {
            Some(header) if !header.is_empty() => HeaderSource::AnswerHeader(header.to_vec()),
            _ => HeaderSource::Complex,
        }
    }
}

impl IdentityHeader {
    /// The name, for the lifetime of the configuration (which outlives every request
    /// and is never modified once parsed).
    pub fn name(&self) -> &'static [u8] {
        // SAFETY: the Vec lives in the configuration and is not changed after parsing.
        unsafe { core::slice::from_raw_parts(self.name.as_ptr(), self.name.len()) }
    }

    pub fn lowcase_name(&self) -> &'static [u8] {
        // SAFETY: as for `name`.
        unsafe { core::slice::from_raw_parts(self.lowcase_name.as_ptr(), self.lowcase_name.len()) }
    }
}

/// One `identity_require value ... [error=401|403]`.
#[derive(Clone)]
pub struct Require {
    /// Compiled values; each must be non-empty and neither `0` nor `false`.
    pub values: Vec<*mut ngx_http_complex_value_t>,
    /// The status a failed check answers with.
    pub error: u16,
    /// `file:line` of the directive, for the error log.
    pub at: String,
}

/// `identity_request`.
#[derive(Clone)]
pub enum RequestUri {
    Off,
    Uri(ngx_str_t),
}

/// `identity_key`: the compiled value and its text (which tells two keys apart).
#[derive(Clone)]
pub struct KeyDef {
    pub value: *mut ngx_http_complex_value_t,
    pub source: Vec<u8>,
    /// nginx's index of the variable the key consists of, when it is exactly one (the
    /// usual `$cookie_NAME`): read directly, without the script engine.
    pub variable: Option<usize>,
}

/// A shared memory zone of this module, as nginx registered it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ZoneRef(pub *mut ngx_shm_zone_t);

// SAFETY: nginx's record of a zone, set while the configuration is parsed and only read
// afterwards, by the one thread of each nginx process.
unsafe impl Sync for ZoneRef {}

/// `identity_cache`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum CacheSetting {
    Off,
    Zone(ZoneRef),
}

/// `identity_sealed name [max_age=time]`.
#[derive(Clone)]
pub struct SealedCookie {
    pub name: Vec<u8>,
    pub max_age: Option<i64>,
}

/// `identity_assertion header [audience=] [issuer=] [ttl=] [claims=]`.
#[derive(Clone)]
pub struct AssertionHeader {
    pub name: Vec<u8>,
    pub lowcase_name: Vec<u8>,
    /// As `IdentityHeader::indexed`.
    pub indexed: bool,
    pub spec: crate::assertion::AssertionSpec,
}

impl AssertionHeader {
    /// The name, for the lifetime of the configuration (as `IdentityHeader::name`).
    pub fn name(&self) -> &'static [u8] {
        // SAFETY: the Vec lives in the configuration and is not changed after parsing.
        unsafe { core::slice::from_raw_parts(self.name.as_ptr(), self.name.len()) }
    }

    pub fn lowcase_name(&self) -> &'static [u8] {
        // SAFETY: as for `name`.
        unsafe { core::slice::from_raw_parts(self.lowcase_name.as_ptr(), self.lowcase_name.len()) }
    }
}

/// `identity_assertion`: `off` cancels an inherited one.
#[derive(Clone)]
pub enum Assertion {
    Off,
    Header(Box<AssertionHeader>),
}

/// `identity_sealed`.
#[derive(Clone)]
pub enum Sealed {
    Off,
    Cookie(SealedCookie),
}

impl IdentityConf {
    /// Whether the module asks the user service here.
    pub fn enabled(&self) -> Option<&ngx_str_t> {
        match &self.request {
            Some(RequestUri::Uri(uri)) => Some(uri),
            _ => None,
        }
    }

    pub fn policy(&self) -> Policy {
        Policy {
            anonymous: self.anonymous.unwrap_or_else(defaults::anonymous),
            on_error: self.on_error.unwrap_or_else(defaults::on_error),
        }
    }

    pub fn max_size(&self) -> usize {
        self.max_size.unwrap_or_else(defaults::max_size)
    }

    /// The sealed cookie opened here, if any.
    pub fn sealed_cookie(&self) -> Option<&SealedCookie> {
        match &self.sealed {
            Some(Sealed::Cookie(cookie)) => Some(cookie),
            _ => None,
        }
    }

    /// The signed assertion header set here, if any.
    pub fn assertion_header(&self) -> Option<&AssertionHeader> {
        match &self.assertion {
            Some(Assertion::Header(h)) => Some(h),
            _ => None,
        }
    }

    /// Whether the module does anything here beyond anti-spoofing.
    pub fn active(&self) -> bool {
        self.enabled().is_some() || self.sealed_cookie().is_some()
    }

    /// The nginx entry of the cache zone in use here; null without one.
    pub fn cache_shm(&self) -> *mut ngx_shm_zone_t {
        match self.cache {
            Some(CacheSetting::Zone(ZoneRef(shm))) => shm,
            _ => ptr::null_mut(),
        }
    }

    /// The cache zone in use here, if any.
    pub fn cache_zone(&self) -> Option<&CacheZone> {
        zone_of(self.cache_shm())
    }

    /// `identity_cache_valid`; merging sets it, the fallback covers an unmerged level.
    pub fn cache_valid(&self) -> &[ValidRule] {
        self.cache_valid
            .as_deref()
            .unwrap_or(&crate::cache_entry::DEFAULT_VALID)
    }

    pub fn cache_use_stale(&self) -> u32 {
        self.cache_use_stale
            .unwrap_or_else(defaults::cache_use_stale)
    }

    pub fn lock_policy(&self) -> LockPolicy {
        LockPolicy {
            enabled: self.cache_lock.unwrap_or_else(defaults::cache_lock),
            timeout_ms: self
                .cache_lock_timeout_ms
                .unwrap_or_else(defaults::cache_lock_timeout_ms),
        }
    }

    /// The `identity_require` list in force here (empty: none, or `off`).
    pub fn requires(&self) -> &[Require] {
        self.require.as_deref().unwrap_or(&[])
    }

    pub fn identity_headers(&self) -> &[IdentityHeader] {
        self.headers.as_deref().unwrap_or(&[])
    }

    /// The `identity_key` text in use here, if known.
    pub fn key_source(&self) -> Option<&[u8]> {
        self.key_def.as_ref().map(|k| &k.source[..])
    }

    /// The header names this level itself protects (`identity_strip`, `identity_header`,
    /// `identity_pass_client_header`: a client header handed to the user service never
    /// reaches an upstream), before merging: what the server-wide strip collects from
    /// every level.
    pub fn own_protected_names(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.strip
            .iter()
            .flatten()
            .chain(self.identity_headers().iter().map(|h| &h.name))
            .chain(self.pass_client_headers())
            .chain(self.assertion_header().map(|a| &a.name))
    }

    /// `identity_pass_client_header`: the client headers the identity subrequest carries.
    pub fn pass_client_headers(&self) -> &[Vec<u8>] {
        self.pass_client.as_deref().unwrap_or(&[])
    }

    /// Whether `other` asks the user service the same question: the same
    /// `identity_request` URI, the same `identity_key` definition, the same client headers
    /// passed, the same cache zone and the same sealed cookie. An answer obtained for one
    /// is valid for the other.
    pub fn same_question(&self, other: &IdentityConf) -> bool {
        let uri = |c: &IdentityConf| c.enabled().map(|u| u.as_bytes().to_vec());
        let sealed = |c: &IdentityConf| c.sealed_cookie().map(|s| (s.name.clone(), s.max_age));
        let passed = |c: &IdentityConf| {
            let mut names: Vec<Vec<u8>> = c
                .pass_client_headers()
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect();
            names.sort_unstable();
            names
        };
        uri(self) == uri(other)
            && self.key_source() == other.key_source()
            && passed(self) == passed(other)
            && self.cache_shm() == other.cache_shm()
            && sealed(self) == sealed(other)
    }
}

/// The configuration-side handle of a zone, once `identity_cache_zone` defined it.
pub fn zone_of<'a>(shm: *mut ngx_shm_zone_t) -> Option<&'a CacheZone> {
    // SAFETY: a zone's data is null or the CacheZone set by identity_cache_zone.
    unsafe {
        shm.as_ref()
            .and_then(|z| (z.data as *const CacheZone).as_ref())
    }
}
