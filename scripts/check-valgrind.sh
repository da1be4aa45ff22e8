#!/usr/bin/env bash
# make check-valgrind: the whole t/ suite with every nginx process under valgrind's
# memcheck. Fails on a definite leak or an invalid read or write whose stack passes
# through this module. nginx's own known reports are suppressed in t/valgrind.suppress,
# each with the reason.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
logs=$top/build/valgrind
rm -rf "$logs"; mkdir -p "$logs"
cd "$top"
export TEST_NGINX_BINARY=${NGINX_BINARY:-/usr/sbin/nginx}
export TEST_NGINX_LOAD_MODULES="${ECHO_MODULE:-/usr/lib/nginx/modules/ngx_http_echo_module.so} ${IDENTITY_MODULE:-$top/build/modules/ngx_http_identity_module.so}"
export TEST_NGINX_USE_VALGRIND="--tool=memcheck --leak-check=full --show-possibly-lost=no --errors-for-leak-kinds=definite --num-callers=60 --suppressions=$top/t/valgrind.suppress --log-file=$logs/vg.%p.log"
# Requests wait on nginx under valgrind: give them time.
export TEST_NGINX_SERVROOT=$logs/servroot
export TEST_NGINX_TIMEOUT=${TEST_NGINX_TIMEOUT:-10}
prove -r ${VALGRIND_TESTS:-t} >"$logs/prove.log" 2>&1 || echo "check-valgrind: prove reported failures (timing under valgrind); see $logs/prove.log"
tail -3 "$logs/prove.log"

# One report per error block; keep those whose stack mentions the module.
ours=$(awk '
  /^==[0-9]+== (Invalid (read|write)|[0-9,]+ .*definitely lost)/ { inblock = 1; block = $0 "\n"; next }
  inblock && /^==[0-9]+== *$/ { if (block ~ /ngx_http_identity_module|ngx_identity/) { n++; printf "%s\n", block } inblock = 0; next }
  inblock { block = block $0 "\n" }
  END { if (n) exit 1 }
' "$logs"/vg.*.log) && status=0 || status=1
processes=$(ls "$logs"/vg.*.log | wc -l)
others=$( (grep -lE 'Invalid (read|write)|definitely lost' "$logs"/vg.*.log 2>/dev/null || true) | wc -l)
echo "check-valgrind: $processes nginx processes checked; logs with any report: $others"
if [ "$status" -ne 0 ]; then
  echo "check-valgrind: reports through this module:"
  echo "$ours" | head -80
  exit 1
fi
echo "check-valgrind: no definite leak and no invalid read or write through this module"
