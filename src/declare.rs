//! The macro behind `directives.rs`: from one list of directives it writes the location
//! configuration struct, the inheritance of each setting, the defaults, the nginx command
//! table and each directive's set callback, so none of them can drift from the others.

/// `identity_directives! { ... }`, as used in `directives.rs`.
///
/// - `settings`: a directive that stores a value in `IdentityConf`. Its field is always an
///   `Option<T>` (`None` = not set at this level) and its merge rule is one of:
///   `inherit = EXPR` (unset takes the enclosing level's value, else EXPR: the default,
///   also `defaults::FIELD()`), `inherit_conf = EXPR` (the same, for a default that needs
///   the configuration `cf`, and may use `?`), or `this_level` (never inherited).
/// - `derived`: fields the merge computes from the settings (not directives).
/// - `others`: directives without a location setting, with their own conf offset.
macro_rules! identity_directives {
    (
        merge($cf:ident);
        settings {
            $(
                $(#[$fm:meta])*
                $field:ident: $ty:ty => $name:literal, $levels:expr, $args:expr, $parse:path,
                    $rule:ident $(= $default:expr)?;
            )*
        }
        derived {
            $( $(#[$dm:meta])* $dfield:ident: $dty:ty = $dinit:expr; )*
        }
        others {
            $( $oname:literal, $olevels:expr, $oargs:expr, $oset:expr, $ooffset:expr; )*
        }
    ) => {
        /// Location configuration (also at the http and server levels). Every directive's
        /// field is `None` until set at this level; `merge` fills in inherited values and
        /// defaults, so after merging every field a handler reads is set.
        pub struct IdentityConf {
            $( $(#[$fm])* pub $field: Option<$ty>, )*
            $( $(#[$dm])* pub $dfield: $dty, )*
        }

        impl Default for IdentityConf {
            fn default() -> Self {
                IdentityConf {
                    $( $field: None, )*
                    $( $dfield: $dinit, )*
                }
            }
        }

        /// The value each inherited setting takes when no level sets it.
        pub mod defaults {
            #[allow(unused_imports)]
            use super::*;
            $( identity_directives!(@default $field, $ty, $rule $(= $default)?); )*
        }

        impl IdentityConf {
            /// Applies each setting's merge rule (declared with the directive).
            pub(crate) fn inherit(
                &mut self,
                $cf: &mut ngx_conf_t,
                prev: &IdentityConf,
            ) -> Result<(), MergeError> {
                let _ = &$cf;
                $( identity_directives!(@merge self, prev, $cf, $field, $rule $(= $default)?); )*
                Ok(())
            }
        }

        /// nginx's table of this module's directives, null-terminated.
        pub static mut COMMANDS: [ngx_command_t; [$($name,)* $($oname,)*].len() + 1] = [
            $( command(ngx_string!($name), $levels, $args, location_shim!($parse),
                NGX_HTTP_LOC_CONF_OFFSET), )*
            $( command(ngx_string!($oname), $olevels, $oargs, $oset, $ooffset), )*
            ngx_command_t::empty(),
        ];
    };

    (@default $field:ident, $ty:ty, inherit = $default:expr) => {
        pub fn $field() -> $ty {
            $default
        }
    };
    (@default $field:ident, $ty:ty, inherit_conf = $default:expr) => {};
    (@default $field:ident, $ty:ty, this_level) => {};

    (@merge $this:ident, $prev:ident, $cf:ident, $field:ident, inherit = $default:expr) => {
        if $this.$field.is_none() {
            $this.$field = Some($prev.$field.clone().unwrap_or_else(defaults::$field));
        }
    };
    (@merge $this:ident, $prev:ident, $cf:ident, $field:ident, inherit_conf = $default:expr) => {
        if $this.$field.is_none() {
            $this.$field = Some(match &$prev.$field {
                Some(value) => value.clone(),
                None => $default,
            });
        }
    };
    (@merge $this:ident, $prev:ident, $cf:ident, $field:ident, this_level) => {};
}

/// The set callback of a location directive: runs the safe parser `$parse` on the
/// location conf and reports its error, naming the directive, to `nginx -t`.
macro_rules! location_shim {
    ($parse:path) => {{
        extern "C" fn shim(
            cf: *mut ngx_conf_t,
            _cmd: *mut ngx_command_t,
            conf: *mut c_void,
        ) -> *mut c_char {
            // SAFETY: nginx calls this as the set callback of a directive whose conf offset
            // is NGX_HTTP_LOC_CONF_OFFSET, so conf is this module's location conf.
            unsafe { run_directive(cf, conf, $parse) }
        }
        shim
    }};
}
