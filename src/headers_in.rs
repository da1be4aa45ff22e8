//! The client's request headers as nginx holds them (`r->headers_in.headers`, an
//! `ngx_list_t`): removing spoofed identity headers, adding the module's own, rewriting
//! Cookie lines, and the filtered copy the identity subrequest carries.

use core::ptr;

use ngx::ffi::{
    ngx_http_request_t, ngx_list_init, ngx_list_push, ngx_list_t, ngx_pool_t, ngx_str_t,
    ngx_table_elt_t,
};

pub use crate::header_shortcuts::flush_header_variables;
use crate::header_shortcuts::{elements, relink_shortcuts};
use crate::pool::{copy_to_pool, NoMemory};

/// What to do with one header while rewriting a list.
pub enum Edit {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

/// Calls `f` with the name and value of every header in `list` (nginx marks deleted
/// entries with hash 0; they are skipped).
///
/// # Safety
/// As for `elements`.
pub unsafe fn visit(list: &ngx_list_t, mut f: impl FnMut(&[u8], &[u8])) {
    // SAFETY: per the caller.
    for (name, value) in unsafe { pairs(list) } {
        f(name, value);
    }
}

/// The name and value of every header in `list`, deleted entries skipped, borrowed from
/// the list: nothing is copied.
///
/// # Safety
/// As for `elements`; the headers' names and values stay as they are for `'a`.
pub unsafe fn pairs<'a>(list: &'a ngx_list_t) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    // SAFETY: per the caller.
    unsafe { elements(list) }.filter_map(|elt| {
        // SAFETY: elt points into the list, which lives for 'a.
        let elt: &'a ngx_table_elt_t = unsafe { &*elt };
        (elt.hash != 0).then(|| (elt.key.as_bytes(), elt.value.as_bytes()))
    })
}

/// Copies of the request's live headers whose name `keep` accepts, in list order, each
/// unlinked from nginx's per-name chain. They share the originals' key and value
/// storage, which lives as long as the request.
pub fn copies(r: &ngx_http_request_t, keep: impl Fn(&[u8]) -> bool) -> Vec<ngx_table_elt_t> {
    // SAFETY: headers_in.headers is the request's live header list.
    unsafe { elements(&r.headers_in.headers) }
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
    // SAFETY: per the caller. `source` is not `list`: reinitialising and pushing onto
    // `list` leave the parts `source` reaches as they are.
    let elts = unsafe { elements(source) };
    let count = source.part.nelts.max(4);
    // SAFETY: pool is live; the element size is the header element's.
    if unsafe { ngx_list_init(list, pool, count, size_of::<ngx_table_elt_t>()) } != 0 {
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
    indexed: bool,
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
    if indexed {
        // e.g. `identity_header Authorization ...`: nginx's own readers see it too.
        relink_shortcuts(r)?;
    }
    Ok(())
}

/// Whether nginx keeps a shortcut in `headers_in` for headers called `name` (the
/// caller passes it to `add_request_header`).
pub fn is_indexed(name: &[u8]) -> bool {
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
