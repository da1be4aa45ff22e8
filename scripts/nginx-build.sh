#!/usr/bin/env bash
# Configures Debian's nginx source skeleton (from nginx-dev) with Debian's own flags into
# build/nginx, so the module's bindings match /usr/sbin/nginx exactly. Prints the objs dir.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dest="$top/build/nginx"
src=/usr/share/nginx/src
if [ ! -f "$dest/objs/ngx_auto_config.h" ]; then
  rm -rf "$dest"
  mkdir -p "$dest"
  cp -a "$src/." "$dest/"
  # shellcheck disable=SC1091
  . "$src/conf_flags"
  (cd "$dest" && ./configure "${NGX_CONF_FLAGS[@]}" >configure.log 2>&1) || {
    echo "nginx-build: configure failed, see $dest/configure.log" >&2; exit 1; }
fi
echo "$dest/objs"
