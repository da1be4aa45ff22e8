# identity_require (per-route permission), $identity_reason, $identity_service_time, the
# variables after internal redirects, and the README's audit log_format.
# t/lib/Identity.pm builds each block's config; every block sends Cookie: session=s1
# unless it says otherwise. The mock user service answers by cookie.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;
use File::Temp qw(tempdir);

# A sealed-cookie keyring (as in t/030-sealed.t), for the sealed_invalid block.
my $dir = tempdir(CLEANUP => 1);
open my $fh, '>', "$dir/identity.keys" or die "$dir/identity.keys: $!";
print $fh "k1 QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=\n";
close $fh;
chmod 0600, "$dir/identity.keys" or die "chmod: $!";
$ENV{TEST_NGINX_SEALED_KEYS} = "$dir/identity.keys";

our $Users = <<'_EOC_';
if ($cookie_session = "root") { return 200 '{"id":"root","roles":["admin","dev"],"email_verified":true}'; }
if ($cookie_session = "s1") { return 200 '{"id":"alice","roles":["dev"],"email_verified":false}'; }
if ($cookie_session = "big") { return 200 '{"id":"bob","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}'; }
if ($cookie_session = "crash") { return 500; }
if ($cookie_session = "text") { return 200 'not json'; }
if ($cookie_session = "crlf") { return 200 '{"id":"a\\r\\nb"}'; }
return 401;
_EOC_

our $Map = <<'_EOC_';
    map $identity_claim_roles $is_admin { default 0; "~(^|,)admin(,|$)" 1; }
    log_format audit escape=json '{"time":"$time_iso8601","client":"$remote_addr",'
        '"method":"$request_method","uri":"$request_uri","status":$status,'
        '"user":"$identity_claim_id","identity_status":"$identity_status",'
        '"identity_reason":"$identity_reason","service_time":"$identity_service_time"}';
    log_format seen 'seen status=$identity_status reason=[$identity_reason] user=[$identity_claim_id] time=$identity_service_time';
_EOC_

# Preprocessors run last-added first: this one before identity_blocks'.
identity_blocks(more_headers => "Cookie: session=s1");
add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("user_service", $Users) unless defined $block->user_service;
    $block->set_value("http_config", $Map . ($block->http_config // ""));
});
no_shuffle();
run_tests();

__DATA__

=== TEST 1: every value of every identity_require non-empty and not 0 or false: passed with the identity
--- more_headers
Cookie: session=root
--- api
identity_require $is_admin;
identity_require $identity_claim_email_verified $identity_claim_id error=401;
identity_header X-User $identity_claim_id;
add_header X-Status $identity_status always;
add_header X-Reason "[$identity_reason]" always;
--- backend
return 200 "user=$http_x_user\n";
--- response_body
user=root
--- response_headers
X-Status: OK
X-Reason: []



=== TEST 2: a value that is 0 refuses with 403, FORBIDDEN, forbidden; the log names the directive's file and line, not the value
--- api
identity_require $is_admin;
identity_header X-User $identity_claim_id;
add_header X-Status "$identity_status $identity_reason $identity_claim_id" always;
--- error_code: 403
--- response_headers
X-Status: FORBIDDEN forbidden alice
--- error_log eval
qr/\[info\] .*identity: refused by identity_require at \S+nginx\.conf:\d+: a value is empty/
--- no_error_log
[error]



=== TEST 3: a JSON false claim refuses, with error=401
--- api
identity_require $identity_claim_email_verified error=401;
--- error_code: 401



=== TEST 4: in order: the first that fails decides the status; the upstream never sees the identity
--- api
identity_require $identity_claim_id;
identity_require $identity_claim_missing error=401;
identity_require $is_admin;
--- error_code: 401



=== TEST 5: identity_anonymous on, no credential, identity_require in force: 401, FORBIDDEN, no_credential
--- more_headers
--- api
identity_anonymous on;
identity_require $identity_claim_id;
add_header X-Status "$identity_status $identity_reason" always;
--- error_code: 401
--- response_headers
X-Status: FORBIDDEN no_credential
--- error_log eval
qr/refused by identity_require at \S+nginx\.conf:\d+: there is no identity/



=== TEST 6: identity_on_error pass, user service unreachable, identity_require in force: 401, reason unreachable
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_9/user; }
    location /api/ {
        identity_request /_identity;
        identity_on_error pass;
        identity_require $identity_claim_id;
        add_header X-Status "$identity_status $identity_reason" always;
        echo "reached";
    }
--- error_code: 401
--- response_headers
X-Status: FORBIDDEN unreachable



=== TEST 7: the module off in a location where identity_require is in force: 401
--- config
    identity_require $identity_claim_id;
    location /open/ {
        add_header X-Status "$identity_status $identity_reason" always;
        echo "reached";
    }
--- request
GET /open/x
--- error_code: 401
--- response_headers
X-Status: FORBIDDEN no_credential



=== TEST 8: inheritance: a location's own list replaces the server's, off clears it
--- config
    identity_require $is_admin;
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user; }
    location /own/ {
        identity_request /_identity;
        identity_require $identity_claim_id;
        echo "own";
    }
    location /cleared/ {
        identity_require off;
        echo "cleared";
    }
    location /inherited/ {
        identity_request /_identity;
        echo "inherited";
    }
--- request eval
["GET /own/x", "GET /cleared/x", "GET /inherited/x"]
--- error_code eval
[200, 200, 403]



=== TEST 9: error= takes 401 or 403 only
--- config
    location /api/ { identity_require $uri error=404; return 200; }
--- must_die
--- error_log
"identity_require" invalid value "error=404": it must be error=401 or error=403



=== TEST 10: off does not mix with other identity_require at one level
--- config
    location /api/ { identity_require $uri; identity_require off; return 200; }
--- must_die
--- error_log
"identity_require" invalid value "off"



=== TEST 11: $identity_reason: denied, and $identity_service_time of the call
--- more_headers
Cookie: session=nobody
--- api
identity_anonymous on;
access_log logs/error.log seen;
--- error_log eval
qr/seen status=DENIED reason=\[denied\] user=\[-?\] time=\d+\.\d{3}/



=== TEST 12: $identity_reason: service_error for a 5xx
--- more_headers
Cookie: session=crash
--- api
identity_on_error pass;
access_log logs/error.log seen;
--- error_log eval
qr/seen status=ERROR reason=\[service_error\] user=\[-?\] time=\d+\.\d{3}/



=== TEST 13: $identity_reason: oversize
--- more_headers
Cookie: session=big
--- api
identity_max_size 32;
identity_on_error pass;
access_log logs/error.log seen;
--- error_log eval
qr/seen status=ERROR reason=\[oversize\]/



=== TEST 14: $identity_reason: invalid_body when a claim is used and the body is not a JSON object
--- more_headers
Cookie: session=text
--- api
identity_header X-Id $identity_claim_id;
identity_on_error pass;
access_log logs/error.log seen;
--- error_log eval
qr/seen status=ERROR reason=\[invalid_body\]/



=== TEST 15: $identity_reason: unsafe_value when a header value holds CR LF
--- more_headers
Cookie: session=crlf
--- api
identity_header X-Id $identity_claim_id;
identity_on_error pass;
access_log logs/error.log seen;
--- error_log eval
qr/seen status=ERROR reason=\[unsafe_value\]/



=== TEST 16: $identity_reason no_credential and $identity_service_time "-" when no call was made
--- more_headers
--- api
identity_anonymous on;
access_log logs/error.log seen;
--- error_log eval
qr/seen status=ANONYMOUS reason=\[no_credential\] user=\[-?\] time=-/



=== TEST 17: $identity_reason duplicate_credential when the cookie is sent twice
--- more_headers
Cookie: session=s1; session=root
--- api
access_log logs/error.log seen;
--- error_code: 400
--- error_log eval
qr/seen status=DENIED reason=\[duplicate_credential\]/



=== TEST 18: a cache hit made no call: "-"; the miss before it made one
--- http_config
    identity_cache_zone ids:1m;
--- api
identity_cache ids;
add_header X-Call "$identity_status $identity_service_time" always;
--- backend
return 200 "ok\n";
--- request eval
["GET /api/a", "GET /api/b"]
--- raw_response_headers_like eval
[qr/X-Call: MISS \d+\.\d{3}\r\n/, qr/X-Call: HIT -\r\n/]



=== TEST 19: authenticated as alice, the upstream answers 404 into error_page: logged with her status and user
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user; }
    location /api/ {
        identity_request /_identity;
        identity_header X-User $identity_claim_id;
        proxy_intercept_errors on;
        error_page 404 /notfound.html;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /notfound.html {
        return 404 "not here\n";
    }
    location /backend { return 404; }
    access_log logs/error.log seen;
--- error_code: 404
--- response_body
not here
--- error_log eval
qr/seen status=OK reason=\[\] user=\[alice\] time=\d+\.\d{3}/



=== TEST 20: the README's audit log_format: one JSON line per request
--- api
access_log logs/error.log audit;
--- error_log eval
qr/\{"time":"\d{4}-\d\d-\d\dT[^"]+","client":"127\.0\.0\.1","method":"GET","uri":"\/api\/x","status":200,"user":"alice","identity_status":"OK","identity_reason":"","service_time":"\d+\.\d{3}"\}/



=== TEST 21: satisfy any: another access module's allow lets a refused request through, without identity headers
--- api
satisfy any;
allow 127.0.0.1;
deny all;
identity_require $is_admin;
identity_header X-User $identity_claim_id;
--- backend
return 200 "user=[$http_x_user]\n";
--- response_body
user=[]



=== TEST 22: a subrequest into a location with identity_require is checked against the main request's identity
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user; }
    location /page {
        identity_request /_identity;
        echo_location /admin/x;
        echo_location /dev/x;
    }
    location /admin/ {
        identity_request /_identity;
        identity_require $is_admin;
        echo "admin part";
    }
    location /dev/ {
        identity_request /_identity;
        identity_require $identity_claim_roles;
        echo "dev part";
    }
--- request
GET /page
--- response_body_like
^(?!.*admin part).*dev part



=== TEST 23: a refusal into error_page: the fallback (identity_require off there) is logged FORBIDDEN, forbidden, with the user and the call's time
--- config
    identity_require $is_admin;
    error_page 403 /denied.html;
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user; }
    location /api/ {
        identity_request /_identity;
        identity_header X-User $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /denied.html {
        identity_require off;
        return 403 "no\n";
    }
    location /backend { return 200 "reached\n"; }
    access_log logs/error.log seen;
--- error_code: 403
--- response_body
no
--- error_log eval
qr/seen status=FORBIDDEN reason=\[forbidden\] user=\[alice\] time=\d+\.\d{3}/



=== TEST 24: no identity into error_page: the fallback keeps the reason there was none
--- more_headers
Cookie: session=nobody
--- config
    error_page 401 /login.html;
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user; }
    location /api/ {
        identity_request /_identity;
        identity_anonymous on;
        identity_require $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /login.html {
        return 401 "log in\n";
    }
    location /backend { return 200 "reached\n"; }
    access_log logs/error.log seen;
--- error_code: 401
--- response_body
log in
--- error_log eval
qr/seen status=FORBIDDEN reason=\[denied\] user=\[-?\] time=\d+\.\d{3}/



=== TEST 25: $identity_reason: timeout when nginx times out calling the user service
--- user_service
echo_sleep 2; echo '{"id":"alice"}';
--- identity
proxy_read_timeout 200ms;
--- api
identity_on_error pass;
access_log logs/error.log seen;
--- error_log eval
qr/seen status=ERROR reason=\[timeout\] user=\[-?\] time=\d+\.\d{3}/
--- timeout: 1.5



=== TEST 26: $identity_reason: sealed_invalid for a sealed cookie that does not open; no_credential without one
--- http_config
    identity_sealed_keys $TEST_NGINX_SEALED_KEYS;
--- config
    location /api/ {
        identity_sealed session;
        identity_anonymous on;
        add_header X-Status "$identity_status $identity_reason $identity_service_time" always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "reached\n"; }
--- request eval
["GET /api/x", "GET /api/y"]
--- more_headers eval
["Cookie: session=AAAAnot-a-sealed-value", "Cookie: other=1"]
--- response_headers eval
[{"X-Status" => "ANONYMOUS sealed_invalid -"}, {"X-Status" => "ANONYMOUS no_credential -"}]
