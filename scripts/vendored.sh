#!/usr/bin/env bash
# make ... NGINX=vendored: builds the module against the newest stable nginx bundled with
# the nginx-src crate (cargo feature "vendored", target dir target/vendored), and beside it,
# under build/vendored:
#   sbin/nginx                          the nginx binary nginx-src built (in nginx-sys's OUT_DIR)
#   modules/ngx_http_identity_module.so this module, built against that nginx
#   modules/ngx_http_echo_module.so     the echo module (tests need it), built from Debian's
#                                       bookworm libnginx-mod-http-echo source against the same nginx
#                                       source and configure flags; cached, rebuilt only when
#                                       the nginx version or flags change
# Prints "NAME=path" lines for the Makefile's summary. Needs no NGINX_BUILD_DIR (it is unset).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/build/vendored
export CARGO_TARGET_DIR=$top/target/vendored
unset NGINX_BUILD_DIR NGINX_SOURCE_DIR NGINX
# Like Debian's nginx, --with-debug: tests read debug-level lines from error.log. (nginx-src
# adds NGX_CONFIGURE_ARGS to its configure flags; the Makefile exports the same value.)
export NGX_CONFIGURE_ARGS=${NGX_CONFIGURE_ARGS:---with-debug}
CARGO=${CARGO:-cargo}
mkdir -p "$out/sbin" "$out/modules"
cd "$top"

log() { echo "vendored: $*" >&2; }

# 1. The module, and with it nginx itself: nginx-sys's build script has nginx-src configure
# and build the bundled nginx in its OUT_DIR/objs. The build-script-executed message names
# that OUT_DIR.
"$CARGO" build --release --locked --features vendored --message-format=json-render-diagnostics \
  > "$out/cargo-build.json"
out_dir=$(python3 - "$out/cargo-build.json" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "build-script-executed" and "#nginx-sys@" in m.get("package_id", ""):
        print(m["out_dir"])
EOF
)
objs=$out_dir/objs
[ -x "$objs/nginx" ] || { log "no nginx binary in $objs (nginx-sys's build)"; exit 1; }

# New files, not overwrites: a running nginx keeps its mapping of the old ones.
install_new() { cp "$1" "$2.tmp" && mv -f "$2.tmp" "$2"; }
install_new "$objs/nginx" "$out/sbin/nginx"
install_new "$CARGO_TARGET_DIR/release/libngx_http_identity_module.so" "$out/modules/ngx_http_identity_module.so"

# nginx-src records the source tree and configure flags it used: "<source dir:?>|<flags>".
info=$(cat "$objs/last-build-info")
src_dir=${info%%|*}
src_dir=${src_dir#\"}
src_dir=${src_dir%\"}
flags=${info#*|}
[ -f "$src_dir/src/core/nginx.h" ] || { log "nginx source not found at $src_dir"; exit 1; }
version=$("$out/sbin/nginx" -v 2>&1 | sed -n 's|^nginx version: nginx/||p')

# 2. The echo module, dynamic, for that nginx.
stamp="nginx=$version flags=$flags"
if [ -f "$out/modules/ngx_http_echo_module.so" ] && [ "$(cat "$out/echo.stamp" 2>/dev/null)" = "$stamp" ]; then
  :
else
  echo_src=$out/echo-src
  if [ ! -f "$echo_src/config" ]; then
    # Debian bookworm builds libnginx-mod-http-echo from its own source package of that
    # name (the nginx source package no longer carries debian/modules/http-echo). Fetched
    # through a private sources list, lists and cache folders: the machine's own apt
    # configuration and caches are not touched. apt checks the files against the signed
    # Release file; dpkg-source then only warns that it lacks the uploader's key.
    log "fetching Debian's libnginx-mod-http-echo source package (bookworm)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/dl"
    echo "deb-src http://deb.debian.org/debian bookworm main" > "$tmp/sources.list"
    apt_private=(-o APT::Sandbox::User=root -o Dir::Etc::SourceList="$tmp/sources.list"
                 -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$tmp/lists"
                 -o Dir::Cache="$tmp/cache")
    apt-get "${apt_private[@]}" update -qq
    (cd "$tmp/dl" && apt-get "${apt_private[@]}" source --download-only -qq libnginx-mod-http-echo \
      > "$tmp/source.log" 2>&1) || { cat "$tmp/source.log" >&2; log "apt-get source failed"; exit 1; }
    dpkg-source -x "$tmp"/dl/libnginx-mod-http-echo_*.dsc "$tmp/echo" > "$tmp/dpkg-source.log" 2>&1 ||
      { cat "$tmp/dpkg-source.log" >&2; log "dpkg-source -x failed"; exit 1; }
    [ -f "$tmp/echo/config" ] || { log "the echo source has no config file"; exit 1; }
    rm -rf "$echo_src.tmp"
    cp -a "$tmp/echo" "$echo_src.tmp"
    mv -f "$echo_src.tmp" "$echo_src"
    rm -rf "$tmp"
    trap - EXIT
  fi

  log "building the echo module for nginx $version"
  tree=$out/nginx-echo-build
  rm -rf "$tree"
  cp -a "$src_dir" "$tree"
  chmod -R u+w "$tree"
  configure=./configure
  [ -f "$tree/configure" ] || configure=./auto/configure
  # Same flags as the vendored nginx (so the same module signature), plus echo.
  # shellcheck disable=SC2086
  (cd "$tree" && $configure $flags --add-dynamic-module="$echo_src" > configure.log 2>&1) ||
    { log "configure failed, see $tree/configure.log"; exit 1; }
  (cd "$tree" && make -j"$(nproc)" modules > make.log 2>&1) ||
    { log "make modules failed, see $tree/make.log"; tail -20 "$tree/make.log" >&2; exit 1; }
  install_new "$tree/objs/ngx_http_echo_module.so" "$out/modules/ngx_http_echo_module.so"
  echo "$stamp" > "$out/echo.stamp"
  rm -rf "$tree"
fi

echo "NGINX_BINARY=$out/sbin/nginx"
echo "NGINX_VERSION=$version"
echo "IDENTITY_MODULE=$out/modules/ngx_http_identity_module.so"
echo "ECHO_MODULE=$out/modules/ngx_http_echo_module.so"
