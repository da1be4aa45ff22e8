# HTTP/2 clients (curl --http2-prior-knowledge) against the fast paths: identity headers
# of exactly $identity or $identity_claim_NAME read directly, the post-read strip that
# leaves a mark so the access phase does not strip again, and the cache key read
# directly from $cookie_session. HTTP/2 sends each cookie as a header field of its own,
# which nginx 1.22 joins into one line with "; " before the request is processed; every
# block asserts what the business service receives (a server of its own, see
# t/lib/Identity.pm). Skipped where nginx lacks http_v2 or curl lacks HTTP/2.
BEGIN {
    my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
    my $built = `$nginx -V 2>&1`;
    my $curl = `curl -V 2>/dev/null`;
    if ($built !~ /--with-http_v2_module/ || $curl !~ /\bHTTP2\b/) {
        print "1..0 # SKIP nginx without http_v2 or curl without HTTP/2\n";
        exit 0;
    }
}
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;

our $HttpConfig = <<'_EOC_';
    identity_cache_zone users:1m;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location = /empty401 { echo_status 401; echo -n ""; }
        location /user {
            if ($cookie_session = "bad") { rewrite ^ /empty401 last; }
            if ($cookie_session = "") { rewrite ^ /empty401 last; }
            return 200 '{"id":"u-$cookie_session","line":"$http_cookie"}';
        }
    }
_EOC_

our $Config = <<'_EOC_';
    underscores_in_headers on;
    ignore_invalid_headers off;
    error_page 400 /open/err;
    location = /_identity {
        internal;
        proxy_ignore_headers X-Accel-Redirect;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user;
    }
    location /api/ {
        identity_request /_identity;
        identity_cache users;
        identity_header X-User $identity;
        identity_header X-User-Id $identity_claim_id;
        add_header X-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /strip/ {
        identity_request /_identity;
        identity_strip_cookie on;
        identity_header X-User-Id $identity_claim_id;
        error_page 401 = /open/fallback;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /open/ {
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        return 200 "$echo_client_request_headers";
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    # Test::Nginx writes "http2 on;" from nginx 1.19.9 on, but nginx has it only since
    # 1.25.1: before that, "listen ... http2" (as in t/050-attacks.t).
    if ($Test::Nginx::Util::NginxVersion < 1.025001) {
        $Test::Nginx::Util::NginxVersion = 1.019008;
    }
    $block->set_value("http2", "");
    $block->set_value("http_config", $HttpConfig);
    $block->set_value("config", $Config);
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: forged X-User and X-User-Id in every spelling and several copies are gone on the miss and on the hit; the module's own values come from the claim fast path
--- request eval
["GET /api/a", "GET /api/b"]
--- more_headers eval
[qq{Cookie: session=s1\nX-User: {"id":"admin"}\nx_user: admin\nX.User: admin\nX-USER: admin\nx-user-id: admin\nX_User_Id: admin\nx.user.id: admin},
 qq{Cookie: session=s1\nX-User: {"id":"admin"}\nx_user: admin\nX.User: admin\nx-user: admin\nX-User-ID: admin\nx_user_id: admin}]
--- response_body_filters eval
main::header_lines('x[-_.]user(?:[-_.]id)?')
--- response_body eval
[qq{X-User: {"id":"u-s1","line":"session=s1"}\nX-User-Id: u-s1\n},
 qq{X-User: {"id":"u-s1","line":"session=s1"}\nX-User-Id: u-s1\n}]
--- response_headers eval
["X-Status: MISS", "X-Status: HIT"]



=== TEST 2: the session cookie in two cookie header fields is refused before any call; the server's error_page 400 fallback gets no identity
--- request
GET /api/c
--- more_headers
Cookie: theme=dark
Cookie: session=s2
Cookie: session=admin
X-User: {"id":"admin"}
--- error_code: 400
--- response_body_filters eval
main::header_lines('x[-_.]user(?:[-_.]id)?|cookie')
--- response_body
cookie: theme=dark; session=s2; session=admin
--- error_log
client sent the cookie "session" more than once
--- no_error_log
[error]



=== TEST 3: split cookie fields key the cache on what the user service judged: a hit for one session, then another session asks for itself
--- request eval
["GET /api/d", "GET /api/d", "GET /api/d", "GET /api/d"]
--- more_headers eval
["Cookie: session=s3a", "Cookie: theme=dark\nCookie: session=s3a", "Cookie: theme=dark\nCookie: session=s3b", "Cookie: session=s3a\nCookie: z=1"]
--- response_body_filters eval
main::header_lines('x-user-id')
--- response_body eval
["X-User-Id: u-s3a\n", "X-User-Id: u-s3a\n", "X-User-Id: u-s3b\n", "X-User-Id: u-s3a\n"]
--- response_headers eval
["X-Status: MISS", "X-Status: HIT", "X-Status: MISS", "X-Status: HIT"]



=== TEST 4: identity_strip_cookie removes the session from the joined cookie line; the other cookies stay
--- request
GET /strip/e
--- more_headers
Cookie: theme=dark
Cookie: session=s4
Cookie: z=1
X-User-Id: admin
--- response_body_filters eval
main::header_lines('cookie|x-user-id')
--- response_body
cookie: theme=dark; z=1
X-User-Id: u-s4



=== TEST 5: a refusal through error_page into an open location of the same server: no forged header, no session cookie
--- request
GET /strip/f
--- more_headers
Cookie: theme=dark
Cookie: session=bad
X-User-Id: admin
x_user_id: admin
X-Other: kept
--- response_body_filters eval
main::header_lines('cookie|x[-_.]user[-_.]id|x-other')
--- response_body
x-other: kept
cookie: theme=dark



=== TEST 6: a request nginx refuses while reading its headers (a bad content-length) reaches error_page without post-read: the access phase strips the forged headers
--- request
GET /api/g
--- more_headers
X-User: {"id":"admin"}
x_user: admin
X-User-Id: admin
X-Other: kept
Content-Length: zz
--- error_code: 400
--- response_body_filters eval
main::header_lines('x[-_.]user(?:[-_.]id)?|x-other')
--- response_body
x-other: kept
