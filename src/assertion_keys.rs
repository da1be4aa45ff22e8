//! `identity_assertion_key path` (http level, repeatable): the EC P-256 keys that sign
//! identity assertions (the first) and that the JWKS publishes (all), read and checked
//! while parsing so that `nginx -t` reports a missing, malformed or exposed file.

use core::ffi::{c_char, c_void};

use ngx::ffi::{ngx_command_t, ngx_conf_t, NGX_LOG_EMERG};
use ngx::ngx_conf_log_error;

use crate::assertion_key::{key_file_mode_ok, AssertionKey, KeyError, KeySet};
use crate::parsers::{args, text};

/// Why `identity_assertion_key` refuses a file.
#[derive(Debug, thiserror::Error)]
enum KeyFileError {
    #[error("cannot be read: {0}")]
    Io(#[from] std::io::Error),
    #[error("is readable by others than its owner and group (chmod o-rwx)")]
    Permissions,
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("is the same key as an earlier identity_assertion_key (kid {0})")]
    Duplicate(String),
}

fn read_key(path: &str) -> Result<AssertionKey, KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if !key_file_mode_ok(mode) {
        return Err(KeyFileError::Permissions);
    }
    // Zeroed when dropped: the file holds the private key.
    let pem = Zeroed(std::fs::read(path)?);
    Ok(AssertionKey::from_pem(&pem)?)
}

/// A key file's bytes, overwritten when dropped.
struct Zeroed(Vec<u8>);

impl core::ops::Deref for Zeroed {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Zeroed {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: b is a valid, aligned byte of the Vec; a volatile write is not
            // optimised away before the memory is freed.
            unsafe { core::ptr::write_volatile(b, 0) };
        }
    }
}

/// The set callback of `identity_assertion_key`.
pub extern "C" fn set_assertion_key(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the live parser state and this module's main conf.
    let (cf_ref, main) = unsafe { (&mut *cf, &mut *(conf as *mut crate::module::MainConf)) };
    // SAFETY: args[1] is the path; ngx_conf_full_name makes it absolute in place.
    let mut path = unsafe { args(cf_ref) }[1];
    // SAFETY: cf->cycle is live while parsing.
    if unsafe { ngx::ffi::ngx_conf_full_name(cf_ref.cycle, &mut path, 1) } != 0 {
        return ngx::core::NGX_CONF_ERROR;
    }
    let path = text(&path);
    let added = read_key(&path).and_then(|key| match &mut main.assertion_keys {
        None => {
            main.assertion_keys = Some(KeySet::new(key));
            Ok(())
        }
        Some(set) => set.push(key).map_err(KeyFileError::Duplicate),
    });
    match added {
        Ok(()) => ngx::core::NGX_CONF_OK,
        Err(e) => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "\"identity_assertion_key\" \"{path}\" {e}"
            );
            ngx::core::NGX_CONF_ERROR
        }
    }
}
