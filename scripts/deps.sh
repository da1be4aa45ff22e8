#!/usr/bin/env bash
# Installs every build and test dependency of ngx-identity from Debian's packages.
# (cargo-fuzz, for make fuzz, comes from crates.io: scripts/fuzz.sh installs it.)
# Idempotent and quiet when everything is already there.
set -euo pipefail

pkgs=(nginx nginx-dev libclang-dev clang libpcre2-dev libssl-dev zlib1g-dev
      libnginx-mod-http-echo libnginx-mod-http-lua wrk curl perl make
      liblist-moreutils-perl libtext-diff-perl libtest-longstring-perl
      libtest-base-perl liburi-perl libhttp-message-perl libwww-perl
      python3-cryptography python3-jwt python3-pip dpkg-dev valgrind
      redis-server redis-tools)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  # redis-server's postinst starts a Redis on 6379; the fleet tests start their own, on
  # free ports. Where the machine has no policy-rc.d, a temporary one (exit 101: "action
  # forbidden") keeps any package's service from starting during this install.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -e "$policy" ] && [ "$(cat "$policy")" = "$(printf '#!/bin/sh\nexit 101')" ]; then
    rm -f "$policy"
    trap - EXIT
  fi
fi

# No Redis service left running or enabled (the tests start and stop their own): the
# package's unit is disabled and stopped where systemd runs, its SysV script otherwise.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  if systemctl is-enabled --quiet redis-server 2>/dev/null || systemctl is-active --quiet redis-server 2>/dev/null; then
    echo "deps: disabling and stopping the redis-server service"
    systemctl disable --now --quiet redis-server 2>/dev/null || true
  fi
elif [ -x /etc/init.d/redis-server ]; then
  if ls /etc/rc[2-5].d/S*redis-server >/dev/null 2>&1; then
    echo "deps: disabling the redis-server service"
    update-rc.d redis-server disable >/dev/null 2>&1 || true
  fi
  if [ -s /run/redis/redis-server.pid ] && kill -0 "$(cat /run/redis/redis-server.pid)" 2>/dev/null; then
    echo "deps: stopping the redis-server service"
    /etc/init.d/redis-server stop >/dev/null 2>&1 || true
  fi
fi

# Bookworm lacks libtest-nginx-perl; Debian's unstable suite has it (architecture all).
# Fetch that one .deb through a private sources list and lists folder, so the machine's
# own sources never gain unstable, then install it so its Perl deps come from bookworm.
if ! perl -MTest::Nginx::Socket -e1 2>/dev/null; then
  echo "deps: installing Test::Nginx from Debian unstable (one package)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
  echo "deb http://deb.debian.org/debian unstable main" > "$tmp/sources.list"
  apt_private=(-o APT::Sandbox::User=root -o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
               -o Dir::State::Lists="$tmp/lists" -o Dir::Cache::Archives="$tmp/archives")
  apt-get "${apt_private[@]}" update -qq
  (cd "$tmp" && apt-get "${apt_private[@]}" download libtest-nginx-perl >/dev/null)
  apt-get install -y -qq "$tmp"/libtest-nginx-perl_*.deb >/dev/null
fi

# From PyPI: websockets, for the gateway tests' WebSocket client and business service
# (t/lib/ws_client.py, t/lib/origin_business_service.py), installed for the python3 the
# tests run. Bookworm's python3-websockets (10.4) lacks the asyncio and sync APIs they use.
websockets_version=15.0.1
if ! python3 -c "import websockets, sys; sys.exit(websockets.__version__ != '$websockets_version')" 2>/dev/null; then
  echo "deps: installing websockets $websockets_version from PyPI"
  # Debian's own python3 is "externally managed" (PEP 668); a pyenv or venv python is not,
  # and ignores this variable.
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
    --root-user-action=ignore "websockets==$websockets_version"
fi

# t/lib/verify_assertion.py needs PyJWT with cryptography in the python3 the tests run.
# Debian's python3-jwt (above) serves /usr/bin/python3; another python3 first on PATH
# (pyenv, a virtualenv) gets PyJWT[crypto] from PyPI.
if ! python3 -c 'import jwt, cryptography' 2>/dev/null; then
  echo "deps: installing PyJWT[crypto] for $(command -v python3)"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
    --root-user-action=ignore 'PyJWT[crypto]>=2.6,<3'
fi

# t/lib/metrics_summary.py reads the identity_metrics exposition with the reference parser,
# prometheus_client's, in the python3 the tests run.
prometheus_client_version=0.21.1
if ! python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('prometheus_client') != '$prometheus_client_version')" 2>/dev/null; then
  echo "deps: installing prometheus_client $prometheus_client_version from PyPI"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
    --root-user-action=ignore "prometheus_client==$prometheus_client_version"
fi

# The stock nginx must not keep serving port 80 from the package's postinst in tests.
exit 0
