//! ngx-identity's logic that needs no nginx, plain safe Rust with unit tests: header-name
//! and cookie rules (`header`), claim extraction (`claims`), what each user-service answer
//! means under the configured policy (`decision`), cached answers (`cache_entry`), the
//! cache's lookup and store decisions (`cache_policy`), sealed cookies (`sealed`), the
//! user service's response headers that variables read (`answer_headers`), and signed
//! identity assertions and their keys (`assertion`, `assertion_key`). The module (the
//! workspace root), `identity-seal` and the fuzz targets all use it as a library.

#![forbid(unsafe_code)]

pub mod answer_headers;
pub mod assertion;
pub mod assertion_cache;
pub mod assertion_key;
pub mod backoff;
pub mod cache_entry;
pub mod cache_policy;
pub mod claims;
pub mod decision;
pub mod fleet;
pub mod header;
pub mod metrics_text;
pub mod resp;
pub mod sealed;
pub mod uri;
