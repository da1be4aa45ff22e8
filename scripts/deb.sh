#!/usr/bin/env bash
# make deb: packs the module built for Debian's nginx (make module) and identity-seal into
# target/libnginx-mod-http-identity_<version>_<arch>.deb, laid out like Debian's own
# libnginx-mod-* packages. Plain dpkg-deb from a staging dir under build/deb.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

pkg=libnginx-mod-http-identity
so=build/modules/ngx_http_identity_module.so
seal=target/release/identity-seal
abi_file=/usr/share/nginx/src/debian/libnginx-mod.abisubstvars

for f in "$so" "$seal" "$abi_file"; do
  [ -f "$f" ] || { echo "deb: $f is missing (run make module; nginx-dev provides $abi_file)" >&2; exit 1; }
done

version=$(awk -F'"' '/^\[/{section=$0} section=="[package]" && /^version *=/{print $2; exit}' Cargo.toml)
arch=$(dpkg --print-architecture)
maintainer="$(git log -1 --format='%an <%ae>' 2>/dev/null || echo 'ngx-identity maintainers <root@localhost>')"
# The ABI that Debian's nginx package Provides and that its module packages Depend on.
abi=$(sed -n 's/^nginx:abi=//p' "$abi_file")
[ -n "$abi" ] || { echo "deb: no nginx:abi line in $abi_file" >&2; exit 1; }

stage=$top/build/deb/$pkg
rm -rf "$top/build/deb"
umask 022
install -d "$stage/DEBIAN" \
  "$stage/usr/lib/nginx/modules" \
  "$stage/usr/share/nginx/modules-available" \
  "$stage/usr/bin" \
  "$stage/usr/share/doc/$pkg"

install -m 0644 "$so" "$stage/usr/lib/nginx/modules/ngx_http_identity_module.so"
install -m 0755 "$seal" "$stage/usr/bin/identity-seal"
strip --strip-unneeded "$stage/usr/lib/nginx/modules/ngx_http_identity_module.so" "$stage/usr/bin/identity-seal"
install -m 0644 nginx-conf/mod-http-identity.conf "$stage/usr/share/nginx/modules-available/mod-http-identity.conf"
cat > "$stage/usr/share/doc/$pkg/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ngx-identity

Files: *
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF

# Shared-library dependencies as Debian computes them (libc6, libgcc-s1 ...), through
# dpkg-shlibdeps run in a throwaway source tree it can read a debian/control from.
shlib_dir=$top/build/deb/shlibdeps
install -d "$shlib_dir/debian"
printf 'Source: ngx-identity\n\nPackage: %s\nArchitecture: any\n' "$pkg" > "$shlib_dir/debian/control"
shlibs=$(cd "$shlib_dir" && dpkg-shlibdeps -O \
  -e"$stage/usr/lib/nginx/modules/ngx_http_identity_module.so" -e"$stage/usr/bin/identity-seal" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
depends="$abi${shlibs:+, $shlibs}"

installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@INSTALLED_SIZE@|$installed_size|" -e "s|@DEPENDS@|$depends|" \
    scripts/deb/control.in > "$stage/DEBIAN/control"
for script in postinst prerm postrm; do
  install -m 0755 "scripts/deb/$script" "$stage/DEBIAN/$script"
done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
  > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums"

out=target/${pkg}_${version}_${arch}.deb
mkdir -p target
dpkg-deb --build --root-owner-group "$stage" "$out.tmp" >/dev/null
mv -f "$out.tmp" "$out"
echo "deb: $out"
dpkg-deb --field "$out" Package Version Depends | sed 's/^/  /'
