//! The client's request headers as nginx holds them (`r->headers_in.headers`, an
//! `ngx_list_t`): removing spoofed identity headers, adding the module's own, rewriting
//! Cookie lines, and the filtered copy the identity subrequest carries.

use core::ptr;

use ngx::ffi::{
    ngx_http_request_t, ngx_list_init, ngx_list_part_t, ngx_list_push, ngx_list_t, ngx_pool_t,
    ngx_str_t, ngx_table_elt_t,
};

use crate::pool::{copy_to_pool, NoMemory};

/// What to do with one header while rewriting a list.
pub enum Edit {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

/// The live elements of an nginx header list, in order.
///
/// # Safety
/// `list` is an initialised `ngx_list_t` of `ngx_table_elt_t`.
unsafe fn elements(list: &ngx_list_t) -> Vec<*mut ngx_table_elt_t> {
    let mut out = Vec::new();
    let mut part: *const ngx_list_part_t = &list.part;
    while !part.is_null() {
        // SAFETY: each part holds nelts elements of the list's element type.
        unsafe {
            let elts = (*part).elts as *mut ngx_table_elt_t;
            for i in 0..(*part).nelts {
                out.push(elts.add(i));
            }
            part = (*part).next;
        }
    }
    out
}

/// Calls `f` with the name and value of every header in `list` (nginx marks deleted
/// entries with hash 0; they are skipped).
///
/// # Safety
/// As for `elements`.
pub unsafe fn visit(list: &ngx_list_t, mut f: impl FnMut(&[u8], &[u8])) {
    // SAFETY: per the caller.
    for elt in unsafe { elements(list) } {
        // SAFETY: elt points into the list.
        let elt = unsafe { &*elt };
        if elt.hash != 0 {
            f(elt.key.as_bytes(), elt.value.as_bytes());
        }
    }
}

/// Copies of the request's live headers whose name `keep` accepts, in list order, each
/// unlinked from nginx's per-name chain. They share the originals' key and value
/// storage, which lives as long as the request.
pub fn copies(r: &ngx_http_request_t, keep: impl Fn(&[u8]) -> bool) -> Vec<ngx_table_elt_t> {
    // SAFETY: headers_in.headers is the request's live header list.
    unsafe { elements(&r.headers_in.headers) }
        .into_iter()
        // SAFETY: each element points into the list.
        .map(|elt| unsafe { *elt })
        .filter(|elt| elt.hash != 0 && keep(elt.key.as_bytes()))
        .map(unlinked)
        .collect()
}

/// A copy of a header element, out of nginx's per-name chain (since 1.23 each element
/// links to the next of its name in the list it was in).
#[allow(clippy::let_and_return)] // the `let` exists only from 1.23 on
fn unlinked(elt: ngx_table_elt_t) -> ngx_table_elt_t {
    #[cfg(nginx1_23_0)]
    let elt = ngx_table_elt_t {
        next: ptr::null_mut(),
        ..elt
    };
    elt
}

/// Refills `list` in place with the headers of `source` that `edit` keeps or replaces.
/// In place because an `ngx_list_t` points into itself (`last`) and cannot be moved.
///
/// # Safety
/// `source` is an initialised `ngx_list_t` of `ngx_table_elt_t` (possibly a bitwise copy
/// of `list`); `pool` outlives `list`.
unsafe fn refill(
    pool: *mut ngx_pool_t,
    list: &mut ngx_list_t,
    source: &ngx_list_t,
    mut edit: impl FnMut(&ngx_table_elt_t) -> Edit,
) -> Result<(), NoMemory> {
    // SAFETY: per the caller; collected before `list` is reinitialised.
    let elts = unsafe { elements(source) };
    // SAFETY: pool is live; the element size is the header element's.
    if unsafe { ngx_list_init(list, pool, elts.len().max(4), size_of::<ngx_table_elt_t>()) } != 0 {
        return Err(NoMemory);
    }
    for elt in elts {
        // SAFETY: elt points into the source storage, which nothing frees.
        let elt = unsafe { &*elt };
        let value = match edit(elt) {
            Edit::Drop => continue,
            Edit::Keep => elt.value,
            Edit::Replace(v) => copy_to_pool(pool, &v)?,
        };
        // SAFETY: list is an initialised list of ngx_table_elt_t.
        let slot = unsafe { ngx_list_push(list) } as *mut ngx_table_elt_t;
        if slot.is_null() {
            return Err(NoMemory);
        }
        // SAFETY: slot is a fresh element; the copy shares key and value storage.
        unsafe {
            ptr::write(slot, *elt);
            (*slot).value = value;
        }
    }
    Ok(())
}

/// Rewrites the request's own header list with `edit`; returns whether anything changed.
/// Every shortcut nginx keeps into the list is rebuilt to follow the new one (see
/// `relink_shortcuts`), so a dropped header is gone for every variable and module.
pub fn rewrite_request_headers(
    r: &mut ngx_http_request_t,
    mut edit: impl FnMut(&[u8], &[u8]) -> Edit,
) -> Result<bool, NoMemory> {
    let mut changed = false;
    // SAFETY: headers_in.headers is the request's live header list.
    unsafe {
        visit(&r.headers_in.headers, |k, v| {
            if !matches!(edit(k, v), Edit::Keep) {
                changed = true;
            }
        })
    };
    if !changed {
        return Ok(false);
    }
    let source = r.headers_in.headers;
    // SAFETY: source is a copy of the live list; the request pool outlives its headers.
    unsafe {
        refill(r.pool, &mut r.headers_in.headers, &source, |elt| {
            if elt.hash == 0 {
                return Edit::Drop;
            }
            edit(elt.key.as_bytes(), elt.value.as_bytes())
        })
    }?;
    relink_shortcuts(r)?;
    Ok(true)
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
fn relink_shortcuts(r: &mut ngx_http_request_t) -> Result<(), NoMemory> {
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
        .into_iter()
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
    // SAFETY: main_conf holds the core module's main configuration at its index.
    let cmcf = unsafe {
        &*(*r.main_conf.add(ngx::ffi::ngx_http_core_module.ctx_index))
            .cast::<ngx::ffi::ngx_http_core_main_conf_t>()
    };
    let vars = cmcf.variables.elts as *const ngx::ffi::ngx_http_variable_t;
    for i in 0..cmcf.variables.nelts {
        // SAFETY: r->variables has one slot per indexed variable of cmcf->variables.
        let (var, value) = unsafe { (&*vars.add(i), &mut *r.variables.add(i)) };
        let name = var.name.as_bytes();
        let reads_headers = name.starts_with(b"http_")
            || name.starts_with(b"cookie_")
            || name == b"proxy_add_x_forwarded_for"
            || name == b"remote_user";
        if reads_headers {
            value.set_valid(0);
            value.set_not_found(0);
        }
    }
}

/// The first of `names` that the request's Cookie lines carry more than once, counted
/// over every Cookie line as `header::cookie_count` reads them.
pub fn repeated_cookie<'n>(
    r: &ngx_http_request_t,
    names: impl IntoIterator<Item = &'n [u8]>,
) -> Option<&'n [u8]> {
    names.into_iter().find(|name| {
        let mut count = 0;
        // SAFETY: headers_in.headers is the request's live header list.
        unsafe {
            visit(&r.headers_in.headers, |key, value| {
                if key.eq_ignore_ascii_case(b"cookie") {
                    count += crate::header::cookie_count(value, name);
                }
            })
        };
        count > 1
    })
}

/// Whether the request carries the cookie `name` at all.
pub fn has_cookie(r: &ngx_http_request_t, name: &[u8]) -> bool {
    let mut count = 0;
    // SAFETY: headers_in.headers is the request's live header list.
    unsafe {
        visit(&r.headers_in.headers, |key, value| {
            if key.eq_ignore_ascii_case(b"cookie") {
                count += crate::header::cookie_count(value, name);
            }
        })
    };
    count > 0
}

/// The first of `vars` (`header::header_names_in_key`) whose header the request carries
/// more than once, if any.
pub fn repeated_header<'n>(
    r: &ngx_http_request_t,
    vars: impl IntoIterator<Item = &'n [u8]>,
) -> Option<&'n [u8]> {
    vars.into_iter().find(|var| {
        let mut count = 0;
        // SAFETY: headers_in.headers is the request's live header list.
        unsafe {
            visit(&r.headers_in.headers, |key, _| {
                if crate::header::header_is_variable(key, var) {
                    count += 1;
                }
            })
        };
        count > 1
    })
}

/// Adds a header to the request's own headers, which every upstream module forwards.
/// Nothing is copied: `name` and `lowcase_name` live in the configuration and `value`
/// in the request's pool (or the configuration), all longer than the request.
pub fn add_request_header(
    r: &mut ngx_http_request_t,
    name: &'static [u8],
    lowcase_name: &'static [u8],
    value: ngx_str_t,
) -> Result<(), NoMemory> {
    // SAFETY: headers_in.headers is the request's live list of ngx_table_elt_t.
    let elt = unsafe { ngx_list_push(&mut r.headers_in.headers) } as *mut ngx_table_elt_t;
    if elt.is_null() {
        return Err(NoMemory);
    }
    // SAFETY: elt is a fresh element; zero it, then fill what nginx reads. nginx only
    // reads through these pointers.
    unsafe {
        ptr::write_bytes(elt, 0, 1);
        (*elt).hash = 1;
        (*elt).key = ngx_str_t {
            len: name.len(),
            data: name.as_ptr() as *mut u8,
        };
        (*elt).value = value;
        (*elt).lowcase_key = lowcase_name.as_ptr() as *mut u8;
    }
    if is_indexed(name) {
        // e.g. `identity_header Authorization ...`: nginx's own readers see it too.
        relink_shortcuts(r)?;
    }
    Ok(())
}

/// Whether nginx keeps a shortcut in `headers_in` for headers called `name`.
fn is_indexed(name: &[u8]) -> bool {
    let mut entry =
        ptr::addr_of!(ngx::ffi::ngx_http_headers_in) as *const ngx::ffi::ngx_http_header_t;
    loop {
        // SAFETY: entry is within nginx's table, which ends with an empty name.
        let h = unsafe { &*entry };
        if h.name.len == 0 {
            return false;
        }
        if h.name.as_bytes().eq_ignore_ascii_case(name) {
            return true;
        }
        // SAFETY: this entry was not the end marker, so the next one exists.
        entry = unsafe { entry.add(1) };
    }
}

/// The subrequest's own copy of the client's headers, without those that `withhold`
/// names and with `add` (the client headers passed to the user service): the subrequest starts with a shallow copy of the parent's, and must not
/// change what the main request sends upstream.
///
/// # Safety
/// `sr` was just created by `ngx_http_subrequest` and shares the parent's pool.
pub unsafe fn give_subrequest_filtered_headers(
    sr: &mut ngx_http_request_t,
    withhold: impl Fn(&[u8]) -> bool,
    add: &[ngx_table_elt_t],
) -> Result<(), NoMemory> {
    let mut any = false;
    // SAFETY: per the caller.
    unsafe { visit(&sr.headers_in.headers, |name, _| any |= withhold(name)) };
    if !any && add.is_empty() {
        // Nothing to hold back: the shallow copy of the parent's list, which nothing
        // changes while the subrequest runs, is what the subrequest reads.
        return Ok(());
    }
    let source = sr.headers_in.headers;
    // SAFETY: per the caller; source is a copy of the parent's list.
    unsafe {
        refill(sr.pool, &mut sr.headers_in.headers, &source, |elt| {
            if elt.hash == 0 || withhold(elt.key.as_bytes()) {
                Edit::Drop
            } else {
                Edit::Keep
            }
        })
    }?;
    // Added to the subrequest's own list only (refilled above: pushing onto the shallow
    // copy would write into the parent's).
    for elt in add {
        // SAFETY: the list was just initialised as a list of ngx_table_elt_t.
        let slot = unsafe { ngx_list_push(&mut sr.headers_in.headers) } as *mut ngx_table_elt_t;
        if slot.is_null() {
            return Err(NoMemory);
        }
        // SAFETY: slot is a fresh element; the copy shares the original's storage, which
        // lives as long as the request.
        unsafe { ptr::write(slot, *elt) };
    }
    // The subrequest's shortcuts still point at the parent's elements, withheld ones too.
    relink_shortcuts(sr)
}
