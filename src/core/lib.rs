//! ngx-identity's logic that needs no nginx, plain safe Rust with unit tests: header-name
//! and cookie rules (`header`), claim extraction (`claims`), what each user-service answer
//! means under the configured policy (`decision`), cached answers (`cache_entry`), the
//! cache's lookup and store decisions (`cache_policy`) and
//! sealed cookies (`sealed`). The module (the workspace root), `identity-seal` and the fuzz
//! targets all use it as a library.

#![forbid(unsafe_code)]

pub mod cache_entry;
pub mod cache_policy;
pub mod claims;
pub mod decision;
pub mod header;
pub mod sealed;
pub mod uri;
