//! Cache bookkeeping that needs no nginx: how long an answer may be kept (`ttl`), the
//! keyed hash that stands for a question and a credential (`key`), what a `Vary` answer
//! depends on (`vary`), and the byte layout of a cached answer (`encoding`). Everything
//! is re-exported here, where the nginx layer finds it.

mod encoding;
mod key;
mod ttl;
mod vary;

pub use encoding::{decode, encode, Cached};
pub use key::{key_input, key_input_with_headers, question, KeyHasher};
pub use ttl::{parse_status_range, ttl_for, ValidRule, DEFAULT_VALID};
pub use vary::{parse_vary, vary_input, Vary};

/// The length of a cache key: an HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
