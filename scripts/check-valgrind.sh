#!/usr/bin/env bash
# make check-valgrind: the whole t/ suite with every nginx process under valgrind's
# memcheck. Fails on a definite leak or an invalid read or write whose stack passes
# through this module. nginx's own known reports are suppressed in t/valgrind.suppress,
# each with the reason.
#
# Failing tests are not ignored either: valgrind slows nginx down by 20-50 times, so a
# test can miss its client timeout. Test files that fail are run once more, alone, with a
# three times longer timeout; a file that fails again fails the check (and its output is
# shown), so a real failure is never hidden behind "timing".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
logs=$top/build/valgrind
rm -rf "$logs"; mkdir -p "$logs"
cd "$top"
export TEST_NGINX_BINARY=${NGINX_BINARY:-/usr/sbin/nginx}
export TEST_NGINX_LOAD_MODULES="${ECHO_MODULE:-/usr/lib/nginx/modules/ngx_http_echo_module.so} ${IDENTITY_MODULE:-$top/build/modules/ngx_http_identity_module.so}"
export TEST_NGINX_USE_VALGRIND="--tool=memcheck --leak-check=full --show-possibly-lost=no --errors-for-leak-kinds=definite --num-callers=60 --suppressions=$top/t/valgrind.suppress --log-file=$logs/vg.%p.log"
export TEST_NGINX_RANDOMIZE=1
# Requests wait on nginx under valgrind: give them time.
export TEST_NGINX_SERVROOT=$logs/servroot
# Test::Nginx's own client retries while a slow nginx starts; the curl it runs for HTTP/2
# blocks does not, unless told so here (curl reads $CURL_HOME/.curlrc).
export CURL_HOME=$logs/curl
mkdir -p "$CURL_HOME"
printf 'retry = 20\nretry-connrefused\nretry-delay = 1\n' >"$CURL_HOME/.curlrc"
timeout=${TEST_NGINX_TIMEOUT:-10}
status=0

started=$SECONDS
TEST_NGINX_TIMEOUT=$timeout prove -r ${VALGRIND_TESTS:-t} >"$logs/prove.log" 2>&1 || true
tail -3 "$logs/prove.log"
failed=$(awk '/^Test Summary Report/ { s = 1 } s && /^t\/.*\.t / { print $1 }' "$logs/prove.log" | sort -u)
if [ -n "$failed" ]; then
  echo "check-valgrind: failed under valgrind, run again alone with a ${timeout}x3 s timeout: $(echo $failed)"
  # shellcheck disable=SC2086
  if TEST_NGINX_TIMEOUT=$((timeout * 3)) prove $failed >"$logs/prove-again.log" 2>&1; then
    echo "check-valgrind: they pass on the second run (timing under valgrind)"
  else
    echo "check-valgrind: still failing under valgrind:"
    grep -vE '^(ok|#)' "$logs/prove-again.log" | head -60
    status=1
  fi
fi
echo "check-valgrind: prove took $((SECONDS - started)) s"

# One report per error block; keep those whose stack mentions the module.
ours=$(awk '
  /^==[0-9]+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap|[0-9,]+ .*definitely lost)/ { inblock = 1; block = $0 "\n"; next }
  inblock && /^==[0-9]+== *$/ { if (block ~ /ngx_http_identity_module|ngx_identity/) { n++; printf "%s\n", block } inblock = 0; next }
  inblock { block = block $0 "\n" }
  END { if (n) exit 1 }
' "$logs"/vg.*.log) || status=1
processes=$(ls "$logs"/vg.*.log | wc -l)
others=$( (grep -lE 'Invalid (read|write|free)|definitely lost|Conditional jump|uninitialised' "$logs"/vg.*.log 2>/dev/null || true) | wc -l)
echo "check-valgrind: $processes nginx processes checked; logs with any report (nginx's own included): $others"
if [ -n "$ours" ]; then
  echo "check-valgrind: reports through this module:"
  echo "$ours" | head -80
fi
if [ "$status" -ne 0 ]; then
  echo "check-valgrind: FAILED"
  exit 1
fi
echo "check-valgrind: every test passes, and no definite leak and no memory error through this module"
