//! What a zone's Redis link does to the gateway, and what the gateway tells the fleet:
//! messages from the fleet remove entries or revoke sealed cookies; the link's state
//! decides how long new entries are kept; purges and revocations made here are
//! published. The link itself (connections, tasks) is fleet_link.rs; the settings
//! fleet_conf.rs.

use core::cell::Cell;

use identity_core::fleet::{FleetKey, Message};
use ngx::ffi::{NGX_LOG_INFO, NGX_LOG_WARN};
use ngx::ngx_log_error;

use crate::fleet_conf::SyncConf;
use crate::fleet_link::{publish, Outgoing};
use crate::module::{cycle_main_conf, MainConf};
use crate::revocations::RevokeError;

fn log() -> *mut ngx::ffi::ngx_log_t {
    ngx::log::ngx_cycle_log().as_ptr()
}

/// A message arrived on the zone's channel (or was loaded from the revocation set).
/// Removal is its only possible effect: an entry goes, or a sealed cookie is refused
/// sooner; a message that does not decode (or, in a keyed fleet, is not authenticated)
/// is ignored.
pub fn on_message(sync: &SyncConf, payload: &[u8]) {
    let Some(main) = cycle_main_conf() else {
        return;
    };
    let Some(key) = main.fleet_key.as_ref() else {
        return;
    };
    match key.decode(payload) {
        Ok(Message::Purge { digest }) => {
            if let Some(zone) = sync.cache_zone() {
                zone.purge_digest(&digest);
            }
        }
        Ok(Message::Revoke { digest, exp }) => revoke_here(main, &digest, exp),
        Err(reason) => {
            ngx_log_error!(
                NGX_LOG_INFO,
                log(),
                "identity: ignored a message on channel \"{}\": {reason}",
                sync.channel
            );
        }
    }
}

/// The subscription is confirmed and the revocations loaded: purges missed while the
/// link was down may have left stale entries, so everything stored before now expires.
pub fn on_link_up(sync: &SyncConf) {
    if let Some(zone) = sync.cache_zone() {
        zone.expire_all();
        zone.renew_lease();
    }
}

/// A PONG arrived: the link is still up.
pub fn on_link_alive(sync: &SyncConf) {
    if let Some(zone) = sync.cache_zone() {
        zone.renew_lease();
    }
}

/// The link is lost: new entries are kept at most `offline=` until it is back.
pub fn on_link_down(sync: &SyncConf) {
    if let Some(zone) = sync.cache_zone() {
        zone.end_lease();
    }
}

/// Seconds between two warnings that the fleet's revocations are not kept.
const NOT_KEPT_WARN_EVERY: i64 = 60;

thread_local! {
    /// When this worker last warned that a revocation from the fleet was not kept.
    static NOT_KEPT_WARNED_AT: Cell<Option<i64>> = const { Cell::new(None) };
}

/// Revokes a sealed cookie's digest in this gateway's table. A full table is logged at
/// most once a minute: in a fleet without `secret=` anyone who can publish can send
/// revocations by the thousand, and must not fill the disk with the error log too.
fn revoke_here(main: &MainConf, digest: &[u8; 32], exp: u64) {
    let Some(zone) = main.revocations else { return };
    if let Err(e) = crate::revocations::revoke(zone, digest, exp) {
        let now = ngx::ffi::ngx_time();
        let due = NOT_KEPT_WARNED_AT.with(|at| {
            let due = at
                .get()
                .is_none_or(|last| now.saturating_sub(last) >= NOT_KEPT_WARN_EVERY);
            if due {
                at.set(Some(now));
            }
            due
        });
        if due {
            ngx_log_error!(
                NGX_LOG_WARN,
                log(),
                "identity: a sealed cookie's revocation from the fleet was not kept: {e} \
                 (logged at most once a minute)"
            );
        }
    }
}

/// A purge on this gateway of a synced zone: the fleet removes the same entries.
pub fn publish_purge(key: &FleetKey, sync_index: usize, digest: [u8; 32]) {
    publish(
        sync_index,
        Outgoing::Purge(key.encode(&Message::Purge { digest })),
    );
}

/// Revokes a sealed cookie until `exp`, here and (through every link) in the fleet.
pub fn revoke_sealed(main: &MainConf, cookie_value: &[u8], exp: u64) -> Result<(), RevokeError> {
    let (Some(key), Some(zone)) = (main.fleet_key.as_ref(), main.revocations) else {
        return Err(RevokeError::NoTable);
    };
    let digest = key.sealed_digest(cookie_value);
    crate::revocations::revoke(zone, &digest, exp)?;
    let member = key.encode(&Message::Revoke { digest, exp });
    for index in 0..main.syncs.len() {
        publish(
            index,
            Outgoing::Revoke {
                member: member.clone(),
                exp,
            },
        );
    }
    Ok(())
}

/// Whether this gateway holds a revocation of the sealed cookie `cookie_value`: under
/// the fleet key, or the one before it (a reload changed `secret=`, and the table still
/// holds revocations made with the earlier key).
pub fn is_revoked(main: &MainConf, cookie_value: &[u8]) -> bool {
    let Some(zone) = main.revocations else {
        return false;
    };
    [main.fleet_key.as_ref(), main.previous_fleet_key.as_ref()]
        .into_iter()
        .flatten()
        .any(|key| crate::revocations::is_revoked(zone, &key.sealed_digest(cookie_value)))
}
