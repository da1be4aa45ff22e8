#!/usr/bin/env bash
# make run / make stop: Debian's nginx with nginx-conf/demo.conf under build/demo.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
prefix="$top/build/demo"
nginx=${NGINX:-/usr/sbin/nginx}
conf="$top/nginx-conf/demo.conf"

stop() {
  if [ -f "$prefix/logs/nginx.pid" ] && kill -0 "$(cat "$prefix/logs/nginx.pid")" 2>/dev/null; then
    "$nginx" -p "$prefix/" -c "$conf" -s quit
    sleep 0.5
  fi
}

case "${1:-start}" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

stop
mkdir -p "$prefix/logs" "$prefix/modules" "$prefix/tmp"
ln -sf "$top/build/modules/ngx_http_identity_module.so" "$prefix/modules/"
"$nginx" -p "$prefix/" -c "$conf" -t -q
"$nginx" -p "$prefix/" -c "$conf"
sleep 0.3

show() {
  echo "\$ $*"
  "$@" 2>&1 | sed 's/^/  /'
  echo
}
echo "ngx-identity demo: gateway on http://127.0.0.1:8080 (logs in build/demo/logs; make stop ends it)"
echo
show curl -s -i http://127.0.0.1:8080/api/orders
show curl -s -b 'session=alice-session; theme=dark' http://127.0.0.1:8080/api/orders
show curl -s -i -b session=expired-session http://127.0.0.1:8080/api/orders
show curl -s -b session=bob-session -H 'X-User: {"id":"root"}' -H 'X-Forwarded-User: root' http://127.0.0.1:8080/api/orders
show curl -s -i http://127.0.0.1:8080/public/news
