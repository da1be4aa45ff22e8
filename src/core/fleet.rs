//! The fleet's side of `identity_cache_sync`: the digests that name a session to every
//! gateway without revealing it, the messages gateways exchange through Redis, and the
//! link's URL. No nginx here; the link itself is the module's fleet_link.rs.

mod key;
mod message;
mod redis_url;

pub use key::{FleetKey, FleetKeyError, MIN_SECRET_LEN};
pub use message::{Message, MessageError};
pub use redis_url::{RedisUrl, UrlError};
