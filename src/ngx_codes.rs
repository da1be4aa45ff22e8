//! nginx's return codes as `ngx_int_t`, declared once for the nginx layer: nginx-sys's
//! bindings give them mixed types (`NGX_OK` is a `u32`, the others `i32`), `ngx::core::Status`
//! wraps them in a type that cannot be matched on. HTTP statuses come from the `ngx` crate's
//! `HTTPStatus`; `rc` makes one a handler's return value.

use ngx::core::Status;
use ngx::ffi::ngx_int_t;
use ngx::http::HTTPStatus;

pub const NGX_OK: ngx_int_t = Status::NGX_OK.0;
pub const NGX_ERROR: ngx_int_t = Status::NGX_ERROR.0;
pub const NGX_AGAIN: ngx_int_t = Status::NGX_AGAIN.0;
pub const NGX_DONE: ngx_int_t = Status::NGX_DONE.0;
pub const NGX_DECLINED: ngx_int_t = Status::NGX_DECLINED.0;

/// `NGX_HTTP_SPECIAL_RESPONSE`: statuses from here on are nginx's own pages.
pub const NGX_HTTP_SPECIAL_RESPONSE: ngx_int_t = ngx::ffi::NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t;

/// An HTTP status as a handler's return value.
pub const fn rc(status: HTTPStatus) -> ngx_int_t {
    status.0 as ngx_int_t
}
