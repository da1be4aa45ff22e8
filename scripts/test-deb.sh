#!/usr/bin/env bash
# make test-deb: installs target/libnginx-mod-http-identity_<version>_<arch>.deb with apt,
# checks Debian's nginx accepts and loads it with its own /etc/nginx/nginx.conf, serves one
# request through the module, then purges the package and checks nothing is left.
# The machine is left as it was found (trap): the package purged, the test's site file
# gone, and Debian's nginx running only if it was running before (then it is not touched).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

pkg=libnginx-mod-http-identity
version=$(awk -F'"' '/^\[/{section=$0} section=="[package]" && /^version *=/{print $2; exit}' Cargo.toml)
deb=target/${pkg}_${version}_$(dpkg --print-architecture).deb
so=/usr/lib/nginx/modules/ngx_http_identity_module.so
available=/usr/share/nginx/modules-available/mod-http-identity.conf
enabled=/etc/nginx/modules-enabled/50-mod-http-identity.conf
site=/etc/nginx/conf.d/zz-ngx-identity-test-deb.conf
nginx=/usr/sbin/nginx
port=${TEST_DEB_PORT:-18970}  # gateway; user service port+1, business port+2 (below the ephemeral range)
export DEBIAN_FRONTEND=noninteractive

fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
ok() { echo "test-deb: ok - $*"; }
installed() { dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; }
running_pid() {   # the pid of a live nginx master behind $1 (a pid file), or nothing
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q nginx "/proc/$pid/comm" 2>/dev/null; then
    echo "$pid"
  fi
}

[ -f "$deb" ] || fail "$deb is missing (make deb)"
[ "$(id -u)" = 0 ] || fail "must run as root (it installs a package)"
if installed; then
  fail "$pkg is already installed; this test installs and purges it, so it will not touch an installed copy"
fi

# Debian's nginx already running (a real service on this machine): leave it alone and
# run a second nginx from the same binary and the same modules-enabled directory under
# a private prefix instead of Debian's nginx.conf, whose pid file and port 80 it owns.
system_pid=$(running_pid /run/nginx.pid)
# nginx -t leaves an empty pid file behind (it checks it can create it): remove it at
# the end if there was none before.
pidfile_before=no
[ -e /run/nginx.pid ] && pidfile_before=yes
tmp=$(mktemp -d)
our_pid=""
our_pidfile=/run/nginx.pid
nginx_args=()
conf_desc="Debian's /etc/nginx/nginx.conf"
if [ -n "$system_pid" ]; then
  echo "test-deb: Debian's nginx is running (pid $system_pid); testing with a private instance beside it"
  mkdir -p "$tmp/logs"
  cat > "$tmp/nginx.conf" <<EOF
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log;
include /etc/nginx/modules-enabled/*.conf;
events { worker_connections 64; }
http {
    access_log $tmp/logs/access.log;
    include $site;
}
EOF
  # Debian's prefix, so modules-enabled's relative load_module paths resolve as usual.
  nginx_args=(-p /usr/share/nginx/ -c "$tmp/nginx.conf" -e "$tmp/logs/error.log")
  our_pidfile=$tmp/nginx.pid
  conf_desc="a private nginx.conf including /etc/nginx/modules-enabled"
fi

cleanup() {
  local rc=$?
  set +e
  if [ -n "$our_pid" ] && kill -0 "$our_pid" 2>/dev/null; then
    kill -QUIT "$our_pid"
    for _ in $(seq 50); do kill -0 "$our_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$our_pid" 2>/dev/null && kill -TERM "$our_pid"
  fi
  rm -f "$site"
  if [ "$pidfile_before" = no ] && [ -f /run/nginx.pid ] && [ ! -s /run/nginx.pid ]; then
    rm -f /run/nginx.pid
  fi
  if installed || dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'config-files'; then
    apt-get purge -y -qq "$pkg" >/dev/null 2>&1
  fi
  rm -rf "$tmp"
  [ $rc = 0 ] && echo "test-deb: PASS" || echo "test-deb: FAIL (machine restored)" >&2
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. apt installs it (it resolves Depends: nginx-abi-... against the installed nginx).
apt-get install -y -qq "./$deb" > "$tmp/apt-install.log" 2>&1 || { cat "$tmp/apt-install.log" >&2; fail "apt-get install"; }
installed || fail "$pkg is not installed after apt-get install"
ok "apt-get install $deb"
[ -f "$so" ] || fail "$so missing"
grep -qx 'load_module modules/ngx_http_identity_module.so;' "$available" || fail "$available lacks the load_module line"
[ -L "$enabled" ] && [ "$(readlink "$enabled")" = "$available" ] || fail "$enabled is not a link to $available"
[ -x /usr/bin/identity-seal ] || fail "/usr/bin/identity-seal missing"
ok "files in place: $so, $available, $enabled -> modules-available"

# 2. identity-seal from the package seals and opens.
printf 'k1 %s\n' "$(head -c 32 /dev/urandom | base64)" > "$tmp/keys"
chmod 600 "$tmp/keys"
sealed=$(/usr/bin/identity-seal --keys "$tmp/keys" --cookie session '{"sub":"deb","exp":4102444800}')
opened=$(/usr/bin/identity-seal --keys "$tmp/keys" --cookie session --open "$sealed")
[[ "$opened" == *'"sub":"deb"'* ]] || fail "identity-seal round trip gave: $opened"
ok "identity-seal seals and opens"

# 3. A site using the module, beside Debian's configuration; nginx -t with Debian's nginx.conf.
cat > "$site" <<EOF
# Written by ngx-identity's scripts/test-deb.sh; removed when it ends.
server {    # mock user service
    listen 127.0.0.1:$((port + 1));
    location = /api/user/token {
        if (\$cookie_session = "deb-test-session") {
            return 200 '{"id":"deb-alice","roles":["ops"]}';
        }
        return 401 "unknown session\n";
    }
}
server {    # mock business service: shows what it received
    listen 127.0.0.1:$((port + 2));
    location / {
        return 200 "x-user=\$http_x_user x-user-id=\$http_x_user_id\n";
    }
}
server {    # the gateway
    listen 127.0.0.1:$port;
    location = /_identity {
        internal;
        proxy_pass http://127.0.0.1:$((port + 1))/api/user/token;
    }
    location /api/ {
        identity_request /_identity;
        identity_header X-User    \$identity;
        identity_header X-User-Id \$identity_claim_id;
        proxy_pass http://127.0.0.1:$((port + 2));
    }
}
EOF
"$nginx" "${nginx_args[@]}" -t -q 2> "$tmp/nginx-t.log" || { cat "$tmp/nginx-t.log" >&2; fail "nginx -t"; }
ok "nginx -t with $conf_desc and the module's directives"

# 4. Start it, one request through the module, stop it.
"$nginx" "${nginx_args[@]}" 2> "$tmp/nginx-start.log" || { cat "$tmp/nginx-start.log" >&2; fail "starting nginx"; }
for _ in $(seq 50); do our_pid=$(running_pid "$our_pidfile"); [ -n "$our_pid" ] && break; sleep 0.1; done
[ -n "$our_pid" ] || fail "nginx did not start"
ok "nginx started (pid $our_pid)"
body=""
for _ in $(seq 20); do
  body=$(curl -s -b session=deb-test-session -H 'X-User: spoofed' "http://127.0.0.1:$port/api/orders") && break
  sleep 0.1
done
[ "$body" = 'x-user={"id":"deb-alice","roles":["ops"]} x-user-id=deb-alice' ] || fail "business service saw: $body"
ok "the business service got the identity headers (and not the spoofed X-User)"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/orders")
[ "$code" = 401 ] || fail "no session: expected 401, got $code"
ok "no session: 401"
"$nginx" "${nginx_args[@]}" -s quit 2> "$tmp/nginx-quit.log"
for _ in $(seq 100); do kill -0 "$our_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$our_pid" 2>/dev/null && fail "nginx (pid $our_pid) did not stop"
our_pid=""
ok "nginx stopped"

# 5. Purge: the .so, the modules-available file and the modules-enabled link are gone.
apt-get purge -y -qq "$pkg" > "$tmp/apt-purge.log" 2>&1 || { cat "$tmp/apt-purge.log" >&2; fail "apt-get purge"; }
dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -Eq ' installed$|config-files' && fail "$pkg still known to dpkg"
for f in "$so" "$available" "$enabled" "$enabled.removed" /usr/bin/identity-seal; do
  if [ -e "$f" ] || [ -L "$f" ]; then fail "$f is still there after purge"; fi
done
ok "apt-get purge removed the .so, $available and $enabled"
rm -f "$site"
"$nginx" -t -q 2> "$tmp/nginx-t.log" || { cat "$tmp/nginx-t.log" >&2; fail "nginx -t after purge"; }
ok "Debian's nginx -t still passes after purge"
