//! nginx's shortcuts into the client's header list (`r->headers_in.host`, `.cookie`,
//! `.authorization`...) and the cached values of the variables that read headers: both
//! must follow the list when the module rewrites it.

use core::marker::PhantomData;
use core::ptr;

use ngx::ffi::{ngx_http_request_t, ngx_list_part_t, ngx_list_t, ngx_str_t, ngx_table_elt_t};

use crate::pool::NoMemory;

/// The elements of an nginx header list, in order, deleted ones included (hash 0).
/// An iterator rather than a collection: the request path allocates nothing for it.
///
/// # Safety
/// `list` is an initialised `ngx_list_t` of `ngx_table_elt_t`, and its parts stay as
/// they are while the iterator is used (pushing onto another list is fine, so is
/// reinitialising `list` itself when it is a bitwise copy of the list being rebuilt).
pub(crate) unsafe fn elements(list: &ngx_list_t) -> Elements<'_> {
    Elements {
        part: &list.part,
        next: 0,
        _list: PhantomData,
    }
}

pub(crate) struct Elements<'a> {
    part: *const ngx_list_part_t,
    next: usize,
    _list: PhantomData<&'a ngx_list_t>,
}

impl Iterator for Elements<'_> {
    type Item = *mut ngx_table_elt_t;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // SAFETY: per `elements`, part is null or a live part of the list.
            let part = unsafe { self.part.as_ref() }?;
            if self.next < part.nelts {
                // SAFETY: the part holds nelts elements of the list's element type.
                let elt = unsafe { (part.elts as *mut ngx_table_elt_t).add(self.next) };
                self.next += 1;
                return Some(elt);
            }
            self.part = part.next;
            self.next = 0;
        }
    }
}

/// Points every shortcut nginx keeps in `headers_in` at the rebuilt list, so no
/// variable or module reads a header the list no longer holds (`$http_user_agent`,
/// `$proxy_add_x_forwarded_for`, `$remote_user`, realip, the not-modified filter...).
/// The fields are those of nginx's own `ngx_http_headers_in` table, read at run time, so
/// they are exactly the ones the running nginx indexes. What nginx derived from a header
/// when it parsed it goes with the header where it can be re-derived: the Basic user and
/// password, the browser flags. What describes the client connection or its body
/// (`connection_type`, `keep_alive_n`, `content_length_n`, `chunked`, `server`) stays:
/// the body is still framed by the headers the client sent.
pub(crate) fn relink_shortcuts(r: &mut ngx_http_request_t) -> Result<(), NoMemory> {
    // nginx's static table, ended by an entry with an empty name (a raw pointer to a
    // static needs no unsafe; reading through it below does).
    let mut entry =
        ptr::addr_of!(ngx::ffi::ngx_http_headers_in) as *const ngx::ffi::ngx_http_header_t;
    loop {
        // SAFETY: entry is within the table (the end marker stops the walk).
        let h = unsafe { &*entry };
        if h.name.len == 0 {
            break;
        }
        relink_field(r, h.name.as_bytes(), h.offset)?;
        // SAFETY: this entry was not the end marker, so the next one exists.
        entry = unsafe { entry.add(1) };
    }
    let hi = &mut r.headers_in;
    if hi.authorization.is_null() {
        // `$remote_user` parses Authorization once into these; empty with a null pointer
        // means "not parsed yet", so it looks again and finds none.
        hi.user = ngx_str_t::default();
        hi.passwd = ngx_str_t::default();
    }
    if hi.user_agent.is_null() {
        hi.set_msie(0);
        hi.set_msie6(0);
        hi.set_opera(0);
        hi.set_gecko(0);
        hi.set_chrome(0);
        hi.set_safari(0);
        hi.set_konqueror(0);
    }
    flush_header_variables(r);
    Ok(())
}

/// The list's live elements whose name is `name` (nginx's table matches names
/// case-insensitively, through their lowercase hash key).
fn matching(r: &ngx_http_request_t, name: &[u8]) -> Vec<*mut ngx_table_elt_t> {
    // SAFETY: the request's live header list.
    unsafe { elements(&r.headers_in.headers) }
        // SAFETY: each element points into the list.
        .filter(|&elt| unsafe {
            (*elt).hash != 0 && (*elt).key.as_bytes().eq_ignore_ascii_case(name)
        })
        .collect()
}

/// Since 1.23 every field is a chain through `next`, in list order.
#[cfg(nginx1_23_0)]
fn relink_field(r: &mut ngx_http_request_t, name: &[u8], offset: usize) -> Result<(), NoMemory> {
    let found = matching(r, name);
    // SAFETY: offset comes from nginx's table of ngx_table_elt_t * fields of headers_in.
    let mut next = unsafe {
        (ptr::addr_of_mut!(r.headers_in) as *mut u8).add(offset) as *mut *mut ngx_table_elt_t
    };
    for elt in found {
        // SAFETY: next is the field or the previous element's `next`; elt is in the list.
        unsafe {
            *next = elt;
            (*elt).next = ptr::null_mut();
            next = ptr::addr_of_mut!((*elt).next);
        }
    }
    // SAFETY: as above; ends the chain (null when nothing matched).
    unsafe { *next = ptr::null_mut() };
    Ok(())
}

/// Before 1.23 X-Forwarded-For and Cookie are arrays of element pointers, the other
/// fields the first matching element.
#[cfg(not(nginx1_23_0))]
fn relink_field(r: &mut ngx_http_request_t, name: &[u8], offset: usize) -> Result<(), NoMemory> {
    use core::mem::offset_of;
    use ngx::ffi::{ngx_array_t, ngx_http_headers_in_t};
    let found = matching(r, name);
    // SAFETY: offset comes from nginx's table of fields of headers_in.
    let field = unsafe { (ptr::addr_of_mut!(r.headers_in) as *mut u8).add(offset) };
    if offset == offset_of!(ngx_http_headers_in_t, x_forwarded_for)
        || offset == offset_of!(ngx_http_headers_in_t, cookies)
    {
        // A new array, because a subrequest made earlier shares the old one's storage.
        let mut array = ngx_array_t {
            elts: ptr::null_mut(),
            nelts: 0,
            size: size_of::<*mut ngx_table_elt_t>(),
            nalloc: 0,
            pool: r.pool,
        };
        if !found.is_empty() {
            // SAFETY: the request pool outlives the array.
            let a = unsafe { ngx::ffi::ngx_array_create(r.pool, found.len(), array.size) };
            if a.is_null() {
                return Err(NoMemory);
            }
            for elt in found {
                // SAFETY: a is an initialised array of ngx_table_elt_t pointers.
                let slot = unsafe { ngx::ffi::ngx_array_push(a) } as *mut *mut ngx_table_elt_t;
                if slot.is_null() {
                    return Err(NoMemory);
                }
                // SAFETY: slot is a fresh array element.
                unsafe { *slot = elt };
            }
            // SAFETY: a was created above.
            array = unsafe { *a };
        }
        // SAFETY: this field is an ngx_array_t.
        unsafe { *(field as *mut ngx_array_t) = array };
    } else {
        // SAFETY: every other field of the table is an ngx_table_elt_t pointer.
        unsafe {
            *(field as *mut *mut ngx_table_elt_t) =
                found.first().copied().unwrap_or(ptr::null_mut())
        };
    }
    Ok(())
}

/// Forgets the values nginx cached for this request of the variables that read request
/// headers (`$http_*`, `$cookie_*`, `$proxy_add_x_forwarded_for`, `$remote_user`), so
/// one evaluated before the rewrite (a `set`, an `if`, the identity key) is read again.
/// Also after the identity subrequest, which shares the main request's cache of values
/// but reads a filtered header list (an `Upgrade` it never saw must not stay "not found"
/// for the main request).
pub fn flush_header_variables(r: &mut ngx_http_request_t) {
    if r.variables.is_null() {
        return;
    }
    let cmcf = core_main_conf(r);
    let known = &crate::module::main_conf(r).header_variables;
    let forget = |value: &mut ngx::ffi::ngx_variable_value_t| {
        value.set_valid(0);
        value.set_not_found(0);
    };
    for &i in &known.indexes {
        if i < cmcf.variables.nelts {
            // SAFETY: r->variables has one slot per indexed variable of cmcf->variables.
            forget(unsafe { &mut *r.variables.add(i) });
        }
    }
    // Variables indexed after postconfiguration (by a module configured later), if any.
    let vars = cmcf.variables.elts as *const ngx::ffi::ngx_http_variable_t;
    for i in known.scanned..cmcf.variables.nelts {
        // SAFETY: as above; vars holds nelts variables.
        let (var, value) = unsafe { (&*vars.add(i), &mut *r.variables.add(i)) };
        if reads_headers(var.name.as_bytes()) {
            forget(value);
        }
    }
}

/// The indexed variables that read request headers, listed once per configuration so a
/// flush touches only them instead of comparing every variable's name.
#[derive(Default)]
pub struct HeaderVariables {
    indexes: Vec<usize>,
    /// How many indexed variables there were when listed.
    scanned: usize,
}

impl HeaderVariables {
    pub const NONE: HeaderVariables = HeaderVariables {
        indexes: Vec::new(),
        scanned: 0,
    };

    /// Lists them from the core module's variables at postconfiguration.
    pub fn list(cmcf: &ngx::ffi::ngx_http_core_main_conf_t) -> HeaderVariables {
        let vars = cmcf.variables.elts as *const ngx::ffi::ngx_http_variable_t;
        let indexes = (0..cmcf.variables.nelts)
            // SAFETY: the array holds nelts variables.
            .filter(|&i| reads_headers(unsafe { &*vars.add(i) }.name.as_bytes()))
            .collect();
        HeaderVariables {
            indexes,
            scanned: cmcf.variables.nelts,
        }
    }
}

fn reads_headers(name: &[u8]) -> bool {
    name.starts_with(b"http_")
        || name.starts_with(b"cookie_")
        || name == b"proxy_add_x_forwarded_for"
        || name == b"remote_user"
}

fn core_main_conf<'a>(r: &ngx_http_request_t) -> &'a ngx::ffi::ngx_http_core_main_conf_t {
    // SAFETY: main_conf holds the core module's main configuration at its index, which
    // outlives the request.
    unsafe {
        &*(*r.main_conf.add(ngx::ffi::ngx_http_core_module.ctx_index))
            .cast::<ngx::ffi::ngx_http_core_main_conf_t>()
    }
}
