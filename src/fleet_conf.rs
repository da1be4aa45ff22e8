//! `identity_cache_sync`: the settings of one zone's Redis link, parsed at configuration
//! time (the parser is in parsers/sync.rs) and kept in `MainConf::syncs`.

use std::net::SocketAddr;

use crate::config::ZoneRef;

/// One `identity_cache_sync ZONE redis://HOST[:PORT][/DB] ...`.
pub struct SyncConf {
    /// The synced cache zone (`identity_cache_zone`).
    pub zone: ZoneRef,
    pub zone_name: String,
    /// Resolved at configuration time, like `proxy_pass` to a literal host.
    pub addr: SocketAddr,
    /// `HOST:PORT` as written, for log lines.
    pub server: String,
    pub db: u32,
    pub channel: String,
    pub password: Option<String>,
    /// `offline=`: the longest an entry stored while the link is down is kept, seconds.
    pub offline_ttl: u32,
}

impl SyncConf {
    /// The Redis sorted set the fleet's sealed-cookie revocations are kept in.
    pub fn revocations_key(&self) -> String {
        format!("{}:revoked", self.channel)
    }
}

// SAFETY: a configuration is written while nginx parses it and only read afterwards, by
// the one thread of each process (nginx workers have no other threads that see it); the
// zone pointer is nginx's own record of the zone, valid for the cycle.
unsafe impl Sync for SyncConf {}
