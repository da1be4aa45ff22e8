//! The nginx layer's one pool copy, and its error.

use core::ptr;

use ngx::ffi::{ngx_pnalloc, ngx_pool_t, ngx_str_t};

/// nginx could not allocate memory for a header.
#[derive(Debug, thiserror::Error)]
#[error("could not allocate memory for request headers")]
pub struct NoMemory;

/// A copy in the pool, NUL-terminated like the values nginx's parser leaves: nginx's
/// `ngx_strncasecmp` scans of header values (`$cookie_NAME`) may read one byte past the
/// end and stop at that NUL.
pub fn copy_to_pool(pool: *mut ngx_pool_t, bytes: &[u8]) -> Result<ngx_str_t, NoMemory> {
    // SAFETY: pool is the request's pool; the copy lives as long as the request.
    let data = unsafe { ngx_pnalloc(pool, bytes.len() + 1) } as *mut u8;
    if data.is_null() {
        return Err(NoMemory);
    }
    // SAFETY: data has room for bytes.len() bytes and the NUL.
    unsafe {
        ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
        *data.add(bytes.len()) = 0;
    }
    Ok(ngx_str_t {
        len: bytes.len(),
        data,
    })
}
