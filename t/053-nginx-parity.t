# The cases of nginx's own tests for auth_request (nginx-tests: auth_request.t,
# auth_request_satisfy.t, h2_auth_request.t), rewritten for this module's directives.
# Each block asserts what auth_request does, or the difference the README documents.
# The mock user service decides, as auth_request_satisfy.t's does, on how the main
# request's URI ends ($request_uri, which the identity subrequest keeps), and logs each
# call as "USER SERVICE CALLED", so a block can count them.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity ();  # the business service in a server of its own

our $UserService = <<'_EOC_';
    log_format called 'USER SERVICE CALLED $request_uri';
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        access_log logs/error.log called;
        location / {
            default_type application/json;
            if ($request_uri ~ "open$") { return 200 '{"id":"alice"}'; }
            if ($request_uri ~ "unauthorized$") { return 401 "session expired\n"; }
            if ($request_uri ~ "forbidden$") { return 403 "not yours\n"; }
            if ($request_uri ~ "notfound$") { return 404; }
            if ($request_uri ~ "challenges$") {
                add_header WWW-Authenticate Negotiate always;
                add_header WWW-Authenticate 'Basic realm="shop"' always;
                return 401;
            }
            if ($request_uri ~ "relogin$") {
                add_header Set-Cookie "session=; Max-Age=0; Path=/" always;
                add_header Set-Cookie "remember=; Max-Age=0; Path=/" always;
                add_header X-Internal secret always;
                add_header WWW-Authenticate Negotiate always;
                return 302 /login;
            }
            return 500;
        }
        location = /auth-basic {
            auth_basic "restricted";
            auth_basic_user_file ../html/htpasswd;
            default_type application/json;
            alias html/alice.json;
        }
    }
_EOC_

our $Gateway = <<'_EOC_';
    location = /_identity {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$request_uri;
    }
_EOC_

our $Backend = <<'_EOC_';
    location /backend {
        return 200 "granted user=[$http_x_user_id]\n";
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    # Test::Nginx writes "http2 on;" from nginx 1.19.9 on, but nginx has it only since
    # 1.25.1: before that, "listen ... http2".
    if (defined $block->http2 && $Test::Nginx::Util::NginxVersion < 1.025001) {
        $Test::Nginx::Util::NginxVersion = 1.019008;
    }
    $block->set_value("http_config", $UserService . ($block->http_config // ""));
    my $own = $block->config // "";
    my $backend = $own =~ m{location /backend\b} ? "" : $Backend;
    $block->set_value("config", $Gateway . $backend . $own);
    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "Cookie: session=s");
    }
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: auth_request.t open, unauthorized, forbidden, error, off: 2xx passes, 401 and 403 are relayed; a 404 is relayed where auth_request answers 500 (README)
--- config
    location /plain/ {
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /off/ {
        identity_request off;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request eval
["GET /plain/open", "GET /plain/unauthorized", "GET /plain/forbidden", "GET /plain/notfound", "GET /off/open"]
--- error_code eval
[200, 401, 403, 404, 200]
--- response_body_like eval
["^granted user=\\[alice\\]\$", "^session expired\$", "^not yours\$", "404 Not Found", "^granted user=\\[\\]\$"]



=== TEST 2: auth_request.t post open, post unauthorized: a POST's body does not change the answer
--- config
    location /plain/ {
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request eval
["POST /plain/open\n1234567890", "POST /plain/unauthorized\n1234567890"]
--- error_code eval
[200, 401]



=== TEST 3: auth_request.t open static: an identity location serving a static file (file buffers): the file is the identity
--- config
    location /static/ {
        identity_request /_identity_static;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /_identity_static {
        internal;
        default_type application/json;
        alias html/alice.json;
    }
--- user_files
>>> alice.json
{"id":"alice"}
--- request
GET /static/open
--- response_body
granted user=[alice]
--- no_error_log
[error]



=== TEST 4: auth_request.t proxy auth: the user service's auth_basic challenge is relayed, valid credentials pass, and its body never reaches the client; no credential at all is answered 401 without a call (README)
--- config
    location /proxy/ {
        identity_request /_identity_basic;
        identity_key $http_authorization;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /_identity_basic {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/auth-basic;
    }
--- user_files
>>> htpasswd
user:{PLAIN}secret
>>> alice.json
{"id":"alice"}
--- request eval
["GET /proxy/x", "GET /proxy/x", "GET /proxy/x", "POST /proxy/x\n1234567890"]
--- more_headers eval
["X-None: none", "Authorization: Basic d3Jvbmc6d3Jvbmc=", "Authorization: Basic dXNlcjpzZWNyZXQ=", "Authorization: Basic d3Jvbmc6d3Jvbmc="]
--- error_code eval
[401, 401, 200, 401]
--- raw_response_headers_unlike eval
[qr/WWW-Authenticate/i, qr/^$/, qr/^$/, qr/^$/]
--- raw_response_headers_like eval
[qr/^/, qr/WWW-Authenticate: Basic realm="restricted"\r\n/, qr/^/, qr/WWW-Authenticate: Basic realm="restricted"\r\n/]
--- response_body_like eval
["401 Authorization Required", "401 Authorization Required", "^granted user=\\[alice\\]\$", "401 Authorization Required"]



=== TEST 5: auth_request.t proxy auth with cache: proxy_cache on the identity location, the miss (through the cache's temporary file) and the hit (from the cache file) both pass, the hit without a call
--- http_config
    proxy_cache_path cache keys_zone=ids:1m;
--- config
    location /cached/ {
        identity_request /_identity_cached;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /_identity_cached {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$request_uri;
        proxy_cache ids;
        proxy_cache_key $cookie_session;
        proxy_cache_valid 200 1m;
    }
--- request eval
["GET /cached/open", "GET /cached/again-open"]
--- response_body eval
["granted user=[alice]\n", "granted user=[alice]\n"]
--- no_error_log
[error]
USER SERVICE CALLED /cached/again-open



=== TEST 6: a cached identity answer is still bounded by identity_max_size
--- http_config
    proxy_cache_path cache keys_zone=ids:1m;
--- config
    location /cached/ {
        identity_request /_identity_cached;
        identity_max_size 8;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /_identity_cached {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1$request_uri;
        proxy_cache ids;
        proxy_cache_key $cookie_session;
        proxy_cache_valid 200 1m;
    }
--- request eval
["GET /cached/open", "GET /cached/open"]
--- error_code eval
[503, 503]
--- error_log
the user service's body is larger than identity_max_size



=== TEST 7: auth_request.t proxy auth with body read: a body proxy_pass read into a file, then error_page into a protected location: the exchange leaves the body whole
--- config
    location = /double-open {
        client_body_buffer_size 4k;
        proxy_pass http://127.0.0.1:$server_port/backend-404;
        proxy_intercept_errors on;
        error_page 404 = /fallback/;
    }
    location /fallback/ {
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        if ($request_uri = "/backend-404") { return 404; }
        client_body_buffer_size 16k;
        echo_read_request_body;
        echo "granted user=[$http_x_user_id] length=$content_length body=$echo_request_body";
    }
--- request eval
"POST /double-open\n" . ("1234567890" x 1024)
--- response_body eval
"granted user=[alice] length=10240 body=" . ("1234567890" x 1024) . "\n"



=== TEST 8: auth_request.t multiple www-authenticate headers: every challenge of a 401 is relayed, from the call and from the identity cache
--- http_config
    identity_cache_zone users:1m;
--- config
    location /plain/ {
        identity_request /_identity;
        identity_cache users;
        identity_header X-User-Id $identity_claim_id;
        add_header X-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request eval
["GET /plain/challenges", "GET /plain/again-challenges"]
--- error_code eval
[401, 401]
--- raw_response_headers_like eval
[qr/WWW-Authenticate: Negotiate\r\n(?:.*\r\n)*WWW-Authenticate: Basic realm="shop"\r\n/, qr/WWW-Authenticate: Negotiate\r\n(?:.*\r\n)*WWW-Authenticate: Basic realm="shop"\r\n/]
--- no_error_log
USER SERVICE CALLED /plain/again-challenges



=== TEST 9: a login redirect clearing the expired session's cookies: the 302 carries Location and every Set-Cookie, nothing else of the user service's
--- config
    location /plain/ {
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request
GET /plain/relogin
--- error_code: 302
--- raw_response_headers_like: Set-Cookie: session=; Max-Age=0; Path=/\r\n(?:.*\r\n)*Set-Cookie: remember=; Max-Age=0; Path=/\r\n
--- response_headers_like
Location: http://[^/]+/login
--- raw_response_headers_unlike: (?i)x-internal|www-authenticate



=== TEST 10: auth_request_satisfy.t all/allow: the user service decides (401 and 403 relayed with their bodies)
--- config
    location /all/allow/ {
        satisfy all;
        allow all;
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request eval
["GET /all/allow/open", "GET /all/allow/unauthorized", "GET /all/allow/forbidden"]
--- error_code eval
[200, 401, 403]
--- response_body eval
["granted user=[alice]\n", "session expired\n", "not yours\n"]



=== TEST 11: auth_request_satisfy.t all/deny: deny refuses first, 403, and the user service is never called
--- config
    location /all/deny/ {
        satisfy all;
        deny all;
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request eval
["GET /all/deny/open", "GET /all/deny/unauthorized", "GET /all/deny/forbidden"]
--- error_code eval
[403, 403, 403]
--- no_error_log
USER SERVICE CALLED



=== TEST 12: auth_request_satisfy.t all/basic: auth_basic refuses first, 401 with its challenge, and the user service is never called
--- config
    location /all/basic/ {
        satisfy all;
        auth_basic "restricted";
        auth_basic_user_file ../html/htpasswd;
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- user_files
>>> htpasswd
user:{PLAIN}secret
--- request eval
["GET /all/basic/open", "GET /all/basic/unauthorized", "GET /all/basic/forbidden"]
--- error_code eval
[401, 401, 401]
--- raw_response_headers_like eval
[qr/WWW-Authenticate: Basic realm="restricted"/, qr/WWW-Authenticate: Basic realm="restricted"/, qr/WWW-Authenticate: Basic realm="restricted"/]
--- no_error_log
USER SERVICE CALLED



=== TEST 13: auth_request_satisfy.t all/basic with valid credentials: then the user service decides
--- config
    location /all/basic/ {
        satisfy all;
        auth_basic "restricted";
        auth_basic_user_file ../html/htpasswd;
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- user_files
>>> htpasswd
user:{PLAIN}secret
--- more_headers
Cookie: session=s
Authorization: Basic dXNlcjpzZWNyZXQ=
--- request eval
["GET /all/basic/open", "GET /all/basic/unauthorized", "GET /all/basic/forbidden"]
--- error_code eval
[200, 401, 403]



=== TEST 14: auth_request_satisfy.t any/allow: allow admits first, without an identity and without calling the user service, whatever it would say (a refusal with a body included)
--- config
    location /any/allow/ {
        satisfy any;
        allow all;
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request eval
["GET /any/allow/open", "GET /any/allow/unauthorized", "GET /any/allow/forbidden"]
--- error_code eval
[200, 200, 200]
--- response_body eval
["granted user=[]\n", "granted user=[]\n", "granted user=[]\n"]
--- no_error_log
USER SERVICE CALLED



=== TEST 15: auth_request_satisfy.t any/deny: the user service admits, or its 401/403 stands, answered with nginx's own page (its body is not sent)
--- config
    location /any/deny/ {
        satisfy any;
        deny all;
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request eval
["GET /any/deny/open", "GET /any/deny/unauthorized", "GET /any/deny/forbidden"]
--- error_code eval
[200, 401, 403]
--- response_body_like eval
["^granted user=\\[alice\\]\$", "401 Authorization Required", "403 Forbidden"]
--- response_body_unlike eval
["session expired", "session expired", "not yours"]



=== TEST 16: auth_request_satisfy.t any/basic: the user service admits, or auth_basic's 401 stands (a 403 does not override it)
--- config
    location /any/basic/ {
        satisfy any;
        auth_basic "restricted";
        auth_basic_user_file ../html/htpasswd;
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- user_files
>>> htpasswd
user:{PLAIN}secret
--- request eval
["GET /any/basic/open", "GET /any/basic/unauthorized", "GET /any/basic/forbidden"]
--- error_code eval
[200, 401, 401]
--- raw_response_headers_like eval
[qr/^/, qr/WWW-Authenticate: Basic realm="restricted"/, qr/WWW-Authenticate: Basic realm="restricted"/]



=== TEST 17: satisfy any: a 401's challenges survive with nginx's page, as auth_request's do; its body does not
--- config
    location /any/deny/ {
        satisfy any;
        deny all;
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request
GET /any/deny/challenges
--- error_code: 401
--- raw_response_headers_like: WWW-Authenticate: Negotiate\r\n(?:.*\r\n)*WWW-Authenticate: Basic realm="shop"\r\n
--- response_body_like: 401 Authorization Required



=== TEST 18: satisfy any with identity_strip_cookie: a client allow admits never carries the session cookie upstream either
--- config
    location /any/allow/ {
        satisfy any;
        allow all;
        identity_request /_identity;
        identity_strip_cookie on;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        return 200 "granted cookie=[$http_cookie]\n";
    }
--- more_headers
Cookie: theme=dark; session=s
--- request
GET /any/allow/open
--- response_body
granted cookie=[theme=dark]
--- no_error_log
USER SERVICE CALLED



=== TEST 19: h2_auth_request.t: over HTTP/2, a request body kept in a file (client_body_buffer_size 512) reaches the upstream whole after the exchange
--- http2
--- config
    location /h2/ {
        client_body_buffer_size 512;
        add_header X-Body-File $request_body_file always;
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        client_body_buffer_size 16k;
        echo_read_request_body;
        echo "granted user=[$http_x_user_id] body=$echo_request_body";
    }
--- more_headers
cookie: session=s
--- request eval
"POST /h2/open\n" . ("A" x 600)
--- response_headers_like
X-Body-File: .+
--- response_body eval
"granted user=[alice] body=" . ("A" x 600) . "\n"



=== TEST 20: satisfy any: a request nginx refused while reading its headers reaches error_page without post-read; allow admits it there before the exchange, and the client's identity header still goes
--- config
    error_page 400 /oops;
    location = /oops {
        satisfy any;
        allow all;
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- raw_request eval
"GET /api/x HTTP/1.1\r\nX-User-Id: admin\r\nConnection: close\r\n\r\n"
--- error_code: 400
--- response_body
granted user=[]
