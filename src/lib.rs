//! `ngx_http_identity_module`: turns a session credential into trusted identity headers
//! by asking a user service through an internal location, as nginx's `auth_request`
//! does, but relaying its refusals and reading its body into variables.
//!
//! The nginx-free logic (header rules, claims, policy, cache entries, sealing) lives in
//! the `ngx-identity-core` crate (src/core) with its unit tests; the files here are the
//! nginx layer around it. Re-exported so the layer names it `crate::header` and so on.

pub use identity_core::{
    assertion, assertion_cache, assertion_key, cache_entry, cache_policy, claims, decision, header,
    sealed,
};

mod answer_headers;
mod assertion_header;
mod assertion_keys;
mod cache;
mod cache_fleet;
mod cache_flow;
mod cache_nodes;
mod cache_zone;
mod client_headers;
mod config;
mod content;
#[macro_use]
mod declare;
mod directives;
mod fleet;
mod fleet_conf;
mod fleet_link;
mod handler;
mod header_shortcuts;
mod headers_in;
mod jwks;
mod merge;
mod metrics;
mod metrics_handler;
mod module;
mod ngx_codes;
mod outcome;
mod parsers;
mod pool;
mod protected_names;
mod purge;
mod redis_conn;
mod relay;
mod request_ctx;
mod require;
mod revocations;
mod revoke;
mod sealed_cookie;
mod sealed_keys;
mod subrequest;
mod variables;
mod verdict;
