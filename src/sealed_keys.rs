//! `identity_sealed_keys path` (http level): the key ring that opens sealed cookies,
//! read and checked while parsing so that `nginx -t` reports a missing, malformed or
//! exposed file.

use core::ffi::{c_char, c_void};

use ngx::ffi::{ngx_command_t, ngx_conf_t, NGX_LOG_EMERG};
use ngx::ngx_conf_log_error;

use crate::parsers::{args, text};

/// Why `identity_sealed_keys` refuses a file.
#[derive(Debug, thiserror::Error)]
enum KeyFileError {
    #[error("cannot be read: {0}")]
    Io(#[from] std::io::Error),
    #[error("is readable by others than its owner and group (chmod o-rwx)")]
    Permissions,
    #[error("is not UTF-8 text")]
    Text,
    #[error(transparent)]
    Ring(#[from] crate::sealed::KeyRingError),
}

fn read_key_ring(path: &str) -> Result<crate::sealed::KeyRing, KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o007 != 0 {
        return Err(KeyFileError::Permissions);
    }
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| KeyFileError::Text)?;
    Ok(crate::sealed::KeyRing::parse(&text)?)
}

/// `identity_sealed_keys path` (http level): the key ring, read and checked now so that
/// `nginx -t` reports a missing, malformed or exposed file.
pub extern "C" fn set_sealed_keys(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the live parser state and this module's main conf.
    let (cf_ref, main) = unsafe { (&mut *cf, &mut *(conf as *mut crate::module::MainConf)) };
    if main.keyring.is_some() {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"identity_sealed_keys\" is duplicate");
        return ngx::core::NGX_CONF_ERROR;
    }
    // SAFETY: args[1] is the path; ngx_conf_full_name makes it absolute in place.
    let mut path = unsafe { args(cf_ref) }[1];
    // SAFETY: cf->cycle is live while parsing.
    if unsafe { ngx::ffi::ngx_conf_full_name(cf_ref.cycle, &mut path, 1) } != 0 {
        return ngx::core::NGX_CONF_ERROR;
    }
    let path = text(&path);
    match read_key_ring(&path) {
        Ok(ring) => {
            main.keyring = Some(ring);
            ngx::core::NGX_CONF_OK
        }
        Err(e) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"identity_sealed_keys\" \"{path}\" {e}");
            ngx::core::NGX_CONF_ERROR
        }
    }
}
