# Configuration: what nginx refuses to start with, and what it accepts.
# t/lib/Identity.pm fills in what a block leaves out: GET /api/x, and no stderr when
# nginx must die. Each block gives its whole server config.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;

# TEST 24 and 25: identity settings given once for the whole server.
our $ServerLevel = <<'_EOC_';
    identity_request /_identity;
    identity_key $http_x_token;
    identity_header X-User-Id $identity_claim_id;
    location = /_identity {
        internal;
        if ($http_x_token != "t1") { return 401 "bad token\n"; }
        return 200 '{"id":"alice"}';
    }
    location /api/ {
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        identity_request off;
        return 200 "id=$http_x_user_id\n";
    }
_EOC_

identity_blocks();
no_shuffle();
run_tests();

__DATA__

=== TEST 1: an unknown variable in identity_key stops nginx
--- config
    location = /_identity { internal; return 200 "{}"; }
    location /api/ {
        identity_request /_identity;
        identity_key $no_such_variable;
        return 200 "ok\n";
    }
--- must_die
--- error_log
unknown "no_such_variable" variable



=== TEST 2: identity_max_size 0 is refused
--- config
    location /api/ { identity_max_size 0; return 200; }
--- must_die
--- error_log
"identity_max_size" invalid value "0"



=== TEST 3: identity_max_size abc is refused
--- config
    location /api/ { identity_max_size abc; return 200; }
--- must_die
--- error_log
"identity_max_size" invalid value "abc"



=== TEST 4: identity_max_size above 1m is refused
--- config
    location /api/ { identity_max_size 2m; return 200; }
--- must_die
--- error_log
"identity_max_size" invalid value "2m"



=== TEST 5: identity_max_size 1m is accepted
--- config
    location /api/ { identity_max_size 1m; return 200 "up\n"; }
--- response_body
up
--- no_error_log
[emerg]



=== TEST 6: identity_on_error 200 is refused (not an error status)
--- config
    location /api/ { identity_on_error 200; return 200; }
--- must_die
--- error_log
"identity_on_error" invalid value "200"



=== TEST 7: identity_on_error with a word other than pass is refused
--- config
    location /api/ { identity_on_error open; return 200; }
--- must_die
--- error_log
"identity_on_error" invalid value "open"



=== TEST 8: identity_request to a URI no location serves stops nginx
--- config
    location = /_identity { internal; return 200 "{}"; }
    location /api/ {
        identity_request /_idenitty;
        return 200;
    }
--- must_die
--- error_log
"identity_request /_idenitty": no location serves this URI



=== TEST 9: a catch-all "location /" does not count as serving the identity URI
--- config
    location / { return 200 '{"id":"anyone"}'; }
    location /api/ {
        identity_request /_identity;
        return 200;
    }
--- must_die
--- error_log
"identity_request /_identity": no location serves this URI



=== TEST 10: a regex location does not count as serving the identity URI
--- config
    location ~ ^/_identity$ { internal; return 200 "{}"; }
    location /api/ {
        identity_request /_identity;
        return 200;
    }
--- must_die
--- error_log
"identity_request /_identity": no location serves this URI



=== TEST 11: identity_request at http level is checked in every server that uses it
--- http_config
    identity_request /_identity;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location / { return 200 "other server\n"; }
    }
--- config
    location = /_identity { internal; return 200 "{}"; }
    location /api/ { return 200; }
--- must_die
--- error_log
"identity_request /_identity": no location serves this URI



=== TEST 12: a server that turns identity_request off needs no identity location
--- http_config
    identity_request /_identity;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        identity_request off;
        location / { return 200 "other server\n"; }
    }
--- config
    location = /_identity { internal; return 200 '{"id":"alice"}'; }
    location /api/ {
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        identity_request off;
        return 200 "id=$http_x_user_id\n";
    }
--- more_headers
Cookie: session=s1
--- response_body
id=alice
--- no_error_log
[emerg]



=== TEST 13: a non-"/" prefix location serves the identity URI
--- config
    location /_auth/ {
        internal;
        return 200 '{"id":"alice"}';
    }
    location /api/ {
        identity_request /_auth/check;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "id=$http_x_user_id\n"; }
--- more_headers
Cookie: session=s1
--- response_body
id=alice
--- no_error_log
[emerg]



=== TEST 14: an invalid identity_header name is refused
--- config
    location = /_identity { internal; return 200 "{}"; }
    location /api/ {
        identity_request /_identity;
        identity_header "X:User" $identity;
        return 200;
    }
--- must_die
--- error_log
invalid header name "X:User"



=== TEST 15: an identity_header name with a space is refused
--- config
    location /api/ {
        identity_header "X User" $identity;
        return 200;
    }
--- must_die
--- error_log
invalid header name "X User"



=== TEST 16: an invalid identity_strip name is refused
--- config
    location /api/ {
        identity_strip "X-Internal:";
        return 200;
    }
--- must_die
--- error_log
invalid header name "X-Internal:"



=== TEST 17: identity_strip_cookie on without a $cookie_ variable in the key is refused
--- config
    location = /_identity { internal; return 200 "{}"; }
    location /api/ {
        identity_request /_identity;
        identity_key $http_authorization;
        identity_strip_cookie on;
        return 200;
    }
--- must_die
--- error_log
"identity_strip_cookie on" needs an "identity_key" that reads a $cookie_NAME variable



=== TEST 18: identity_strip_cookie on with the default key ($cookie_session) is accepted
--- config
    location = /_identity { internal; return 200 '{"id":"alice"}'; }
    location /api/ {
        identity_request /_identity;
        identity_strip_cookie on;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "cookie=$http_cookie\n"; }
--- more_headers
Cookie: a=1; session=s1
--- response_body
cookie=a=1
--- no_error_log
[emerg]



=== TEST 19: identity_anonymous takes only on or off
--- config
    location /api/ { identity_anonymous yes; return 200; }
--- must_die
--- error_log
"identity_anonymous" invalid value "yes"



=== TEST 20: identity_strip_cookie takes only on or off
--- config
    location /api/ { identity_strip_cookie 1; return 200; }
--- must_die
--- error_log
"identity_strip_cookie" invalid value "1"



=== TEST 21: identity_request takes off or a URI
--- config
    location /api/ { identity_request _identity; return 200; }
--- must_die
--- error_log
"identity_request" invalid value "_identity"



=== TEST 22: a directive given twice at one level is refused
--- config
    location /api/ {
        identity_on_error 503;
        identity_on_error pass;
        return 200;
    }
--- must_die
--- error_log
"identity_on_error" is duplicate



=== TEST 23: identity_header takes exactly two arguments
--- config
    location /api/ { identity_header X-User; return 200; }
--- must_die
--- error_log
invalid number of arguments in "identity_header" directive



=== TEST 24: settings at server level are inherited by locations
--- config eval
$::ServerLevel
--- more_headers
X-Token: t1
--- response_body
id=alice



=== TEST 25: an inherited server-level setting is enforced (wrong token refused)
--- config eval
$::ServerLevel
--- more_headers
X-Token: t2
--- error_code: 401
--- response_body
bad token



=== TEST 26: identity_request off in a location turns the module off there
--- config
    identity_request /_identity;
    location = /_identity { internal; return 500; }
    location /public/ {
        identity_request off;
        return 200 "public $identity_status\n";
    }
--- request
GET /public/x
--- response_body
public BYPASS
