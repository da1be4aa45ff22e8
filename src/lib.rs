//! `ngx_http_identity_module`: turns a session credential into trusted identity headers
//! by asking a user service through an internal location, as nginx's `auth_request`
//! does, but relaying its refusals and reading its body into variables.
//!
//! The nginx-free logic (header rules, claims, policy) lives in `header`, `claims` and
//! `decision` and is unit tested; the FFI layer around it is compiled only for nginx.

pub mod cache_entry;
pub mod claims;
pub mod decision;
pub mod header;
pub mod sealed;

#[cfg(not(test))]
mod cache;
#[cfg(not(test))]
mod config;
#[cfg(not(test))]
mod handler;
#[cfg(not(test))]
mod headers_in;
#[cfg(not(test))]
mod module;
#[cfg(not(test))]
mod purge;
#[cfg(not(test))]
mod subrequest;
#[cfg(not(test))]
mod variables;
