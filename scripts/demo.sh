#!/usr/bin/env bash
# make run / make stop: Debian's nginx with nginx-conf/demo.conf under build/demo.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
prefix="$top/build/demo"
# nginx reads an environment variable called NGINX as listening sockets handed over by
# an old binary (and then does not daemonize): the binary comes in NGINX_BINARY.
nginx=${NGINX_BINARY:-/usr/sbin/nginx}
unset NGINX
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

# The command line as one can paste it into a shell: a word holding anything but
# [A-Za-z0-9_./:=@%+,-] (a space, the `;` between cookies, JSON's quotes and braces) in
# single quotes.
shell_words() {
  local out="" word
  for word in "$@"; do
    if [[ -n $word && $word != *[!A-Za-z0-9_./:=@%+,-]* ]]; then
      out+=" $word"
    else
      out+=" '${word//\'/\'\\\'\'}'"
    fi
  done
  printf '%s' "${out# }"
}

# One case: what the client sent, then the gateway's answer: the business service's
# report of the headers it received, or the refusal when nothing reached it.
show() {
  local title=$1
  shift
  echo "== $title"
  echo "\$ $(shell_words "$@")"
  "$@" -s -o "$prefix/demo.body" -w '%{http_code} %{redirect_url}\n' >"$prefix/demo.status" 2>&1 || true
  read -r code location <"$prefix/demo.status"
  if [ "$code" = 200 ]; then
    sed 's/^/   /' "$prefix/demo.body"
  else
    echo "   nothing reached the business service: the gateway answered $code${location:+, Location: $location}"
  fi
  echo
}
echo "ngx-identity demo: gateway on http://127.0.0.1:8080 (logs in build/demo/logs; make stop ends it)"
echo
show "no cookie: refused without asking the user service" \
  curl http://127.0.0.1:8080/api/orders
show "a valid session: the identity arrives, the session cookie does not" \
  curl -b 'session=alice-session; theme=dark' http://127.0.0.1:8080/api/orders
show "an expired session: the user service's login redirect is relayed" \
  curl -b session=expired-session http://127.0.0.1:8080/api/orders
show "a client forging X-User and X-Forwarded-User: both are dropped" \
  curl -b session=bob-session -H 'X-User: {"id":"root"}' -H 'X-Forwarded-User: root' http://127.0.0.1:8080/api/orders
show "a public page with identity_anonymous on: passes without identity" \
  curl http://127.0.0.1:8080/public/news
