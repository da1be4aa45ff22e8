//! What a visit of the access handler ends in (`Next`) and how it can fail
//! (`HandlerError`), shared by the files that carry out an exchange.

use ngx::ffi::{ngx_http_request_t, ngx_int_t};

use crate::pool::NoMemory;
use crate::subrequest::StartError;

/// What the access handler does once this module's work for the visit is over.
#[derive(Debug, Clone, Copy)]
pub enum Next {
    /// Return this to the access phase.
    Phase(ngx_int_t),
    /// A response was sent: finalize the request with this and return `NGX_DONE`. Done
    /// last, because finalizing can free the request's pool and this context with it.
    Finalize(ngx_int_t),
}

/// A failure of the handler itself, answered with 500 like nginx's own modules do.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    NoMemory(#[from] NoMemory),
    #[error("the identity_key value could not be evaluated")]
    Key,
    #[error("could not start the identity subrequest: {0}")]
    Subrequest(#[from] StartError),
}

pub trait ConnectionLog {
    fn connection_log(&self) -> *mut ngx::ffi::ngx_log_t;
}

impl ConnectionLog for ngx_http_request_t {
    fn connection_log(&self) -> *mut ngx::ffi::ngx_log_t {
        // SAFETY: a live request always has a connection with a log.
        unsafe { (*self.connection).log }
    }
}
