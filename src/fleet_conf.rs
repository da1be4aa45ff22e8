//! `identity_cache_sync ZONE redis://HOST[:PORT][/DB] [channel=NAME] [password=PASS]
//! [secret=FILE] [offline=TIME]` (http level): the settings of one zone's Redis link,
//! parsed and checked while nginx reads the configuration, so `nginx -t` reports them.
//! The link itself is fleet_link.rs; what it does to the zone, fleet.rs.

use core::ffi::{c_char, c_void};
use std::net::{SocketAddr, ToSocketAddrs};

use identity_core::fleet::{FleetKey, RedisUrl};
use ngx::ffi::{ngx_command_t, ngx_conf_t, ngx_parse_time, ngx_str_t, NGX_LOG_EMERG};
use ngx::ngx_conf_log_error;

use crate::cache_zone::CacheZone;
use crate::config::ZoneRef;
use crate::module::MainConf;
use crate::parsers::{args, text};

/// One `identity_cache_sync`.
pub struct SyncConf {
    /// The synced cache zone (`identity_cache_zone`), found at postconfiguration.
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
    /// Where the directive is, for errors found after parsing.
    pub(crate) place: String,
}

impl SyncConf {
    /// The Redis sorted set the fleet's sealed-cookie revocations are kept in.
    pub fn revocations_key(&self) -> String {
        format!("{}:revoked", self.channel)
    }

    /// The synced cache zone.
    pub fn cache_zone(&self) -> Option<&CacheZone> {
        crate::config::zone_of(self.zone.0)
    }
}

/// What a synced zone's requests need of its link: the fleet's digests and the cap on
/// entries stored while the link is down.
pub struct ZoneFleet {
    pub key: FleetKey,
    pub offline_ttl: u32,
    /// The zone's `SyncConf` in `MainConf::syncs`, for publishing.
    pub sync_index: usize,
}

const DEFAULT_OFFLINE: u32 = 10;

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("invalid parameter \"{0}\"")]
    Parameter(String),
    #[error("\"{0}\": {1}")]
    Url(String, String),
    #[error("cannot resolve \"{0}\": {1}")]
    Resolve(String, String),
    #[error("invalid offline time \"{0}\": it must be a time of at least 1s, e.g. offline=10s")]
    Offline(String),
    #[error("zone \"{0}\" is synced twice")]
    Duplicate(String),
    #[error("secret file \"{0}\" {1}")]
    Secret(String, String),
    #[error("every synced zone must use the same secret= (a gateway is in one fleet)")]
    MixedSecrets,
}

/// Reads a fleet key file: not readable by others, a key `FleetKey::from_secret` takes.
fn read_secret(path: &str) -> Result<Vec<u8>, SyncError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |reason: String| SyncError::Secret(path.to_owned(), reason);
    let mode = std::fs::metadata(path)
        .map_err(|e| fail(format!("cannot be read: {e}")))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(fail(
            "is readable by others than its owner and group (chmod o-rwx)".into(),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    FleetKey::from_secret(&bytes).map_err(|e| fail(e.to_string()))?;
    Ok(bytes)
}

/// The settings, and the secret file's bytes (`None`: no `secret=`).
fn parse(
    cf: &mut ngx_conf_t,
    main: &MainConf,
    a: &[ngx_str_t],
) -> Result<(SyncConf, Option<Vec<u8>>), SyncError> {
    let zone_name = text(&a[1]);
    if main.syncs.iter().any(|s| s.zone_name == zone_name) {
        return Err(SyncError::Duplicate(zone_name));
    }
    let url_text = text(&a[2]);
    let url =
        RedisUrl::parse(&url_text).map_err(|e| SyncError::Url(url_text.clone(), e.to_string()))?;
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| SyncError::Resolve(url.host.clone(), e.to_string()))?
        .next()
        .ok_or_else(|| SyncError::Resolve(url.host.clone(), "no address".into()))?;
    let mut sync = SyncConf {
        zone: ZoneRef(core::ptr::null_mut()),
        server: format!("{}:{}", url.host, url.port),
        addr,
        db: url.db,
        channel: format!("ngx-identity:{zone_name}"),
        zone_name,
        password: None,
        offline_ttl: DEFAULT_OFFLINE,
        place: String::new(),
    };
    let mut secret = None;
    for arg in &a[3..] {
        let arg_text = text(arg);
        let (name, value) = arg_text
            .split_once('=')
            .ok_or_else(|| SyncError::Parameter(arg_text.clone()))?;
        match name {
            "channel" if !value.is_empty() => sync.channel = value.to_owned(),
            "password" if !value.is_empty() => sync.password = Some(value.to_owned()),
            "offline" => {
                let mut s = ngx_str_t {
                    len: value.len(),
                    data: value.as_ptr() as *mut u8,
                };
                // SAFETY: ngx_parse_time only reads s; 1 = in seconds.
                let secs = unsafe { ngx_parse_time(&mut s, 1) };
                sync.offline_ttl = u32::try_from(secs)
                    .ok()
                    .filter(|&s| s >= 1)
                    .ok_or_else(|| SyncError::Offline(value.to_owned()))?;
            }
            "secret" if !value.is_empty() => {
                let mut path = ngx_str_t {
                    len: value.len(),
                    data: value.as_ptr() as *mut u8,
                };
                // SAFETY: cf->cycle is live while parsing; ngx_conf_full_name allocates
                // the absolute path in the cycle's pool when it changes it.
                if unsafe { ngx::ffi::ngx_conf_full_name(cf.cycle, &mut path, 1) } != 0 {
                    return Err(SyncError::Secret(
                        value.to_owned(),
                        "cannot be resolved".into(),
                    ));
                }
                secret = Some(read_secret(&text(&path))?);
            }
            _ => return Err(SyncError::Parameter(arg_text.clone())),
        }
    }
    sync.place = place(cf);
    Ok((sync, secret))
}

/// `file:line` of the directive being parsed.
pub fn place(cf: &ngx_conf_t) -> String {
    // SAFETY: conf_file is live while parsing.
    match unsafe { cf.conf_file.as_ref() } {
        Some(f) => format!("{}:{}", text(&f.file.name), f.line),
        None => String::new(),
    }
}

/// The directive's set callback.
pub extern "C" fn set_cache_sync(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the live parser state and this module's main conf.
    let (cf_ref, main) = unsafe { (&mut *cf, &mut *(conf as *mut MainConf)) };
    // SAFETY: the directive's arguments, as nginx parsed them.
    let a = unsafe { args(cf_ref) }.to_vec();
    let parsed = parse(cf_ref, main, &a).and_then(|(sync, secret)| {
        // One fleet key for every synced zone and the revocations: a gateway is in one
        // fleet, and a sealed cookie's revocation digest must be one value.
        match &main.fleet_secret {
            Some(first) if *first != secret => Err(SyncError::MixedSecrets),
            _ => Ok((sync, secret)),
        }
    });
    match parsed {
        Ok((sync, secret)) => {
            main.fleet_secret = Some(secret);
            main.syncs.push(sync);
            if main.revocations.is_none() {
                main.revocations = crate::revocations::add_zone(cf_ref);
                if main.revocations.is_none() {
                    return ngx::core::NGX_CONF_ERROR;
                }
            }
            ngx::core::NGX_CONF_OK
        }
        Err(e) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"identity_cache_sync\" {e}");
            ngx::core::NGX_CONF_ERROR
        }
    }
}

/// At postconfiguration, when every zone is declared: ties each sync to its cache zone
/// and sets the fleet key for the zones' digests and the revocations.
pub fn resolve(cf: &mut ngx_conf_t) -> Result<(), String> {
    let Some(main) = crate::module::main_conf_of(cf) else {
        return Ok(());
    };
    if main.syncs.is_empty() && main.revocations.is_none() {
        return Ok(());
    }
    if let (None, Some(at)) = (&main.keyring, main.revoke_places.first()) {
        return Err(format!(
            "\"identity_sealed_revoke\" (at {at}) needs \"identity_sealed_keys\" to open the cookies it revokes"
        ));
    }
    let key = match &main.fleet_secret {
        Some(Some(bytes)) => FleetKey::from_secret(bytes).map_err(|e| e.to_string())?,
        _ => FleetKey::public(),
    };
    // SAFETY: cf->cycle is the cycle being configured; its zone list is complete for
    // everything parsed so far, which is the whole http block.
    let zones = unsafe { crate::metrics::module_zones(cf.cycle) };
    for (index, sync) in main.syncs.iter_mut().enumerate() {
        let shm = zones
            .iter()
            .find(|z| z.shm.name.as_bytes() == sync.zone_name.as_bytes())
            .map(|z| *z as *const _ as *mut ngx::ffi::ngx_shm_zone_t);
        let zone = shm.and_then(crate::config::zone_of).ok_or_else(|| {
            format!(
                "\"identity_cache_sync\" zone \"{}\" (at {}) is not declared by identity_cache_zone",
                sync.zone_name, sync.place
            )
        })?;
        let fleet = ZoneFleet {
            key: key.clone(),
            offline_ttl: sync.offline_ttl,
            sync_index: index,
        };
        if zone.fleet.set(fleet).is_err() {
            return Err(format!(
                "\"identity_cache_sync\" zone \"{}\" is synced twice",
                sync.zone_name
            ));
        }
        sync.zone = ZoneRef(shm.unwrap_or(core::ptr::null_mut()));
    }
    main.fleet_key = Some(key);
    crate::revocations::configuring(main);
    Ok(())
}
