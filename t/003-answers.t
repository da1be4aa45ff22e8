# What each kind of user-service answer does to the client's request.
use Test::Nginx::Socket 'no_plan';

# Keeps the lines of a raw header dump ($echo_client_request_headers) whose header
# name matches the pattern (case-insensitively), without their CR, in order.
sub main::header_lines {
    my $names = shift;
    return sub { join "", map { s/\r//r } grep { /^(?:$names):/i } split /^/m, shift };
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: 200: the business service gets the identity headers
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 200 '{"id":"alice"}'; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_header X-User $identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "user=$http_x_user id=$http_x_user_id\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- response_body
user={"id":"alice"} id=alice
--- error_code: 200
--- no_error_log
[error]



=== TEST 2: 204 with an empty body allows; headers made only of $identity are not set
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 204; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_header X-User $identity;
        identity_header X-Auth "via-$identity";
        proxy_pass http://127.0.0.1:$server_port/backend;
        add_header X-Identity-Status $identity_status always;
    }
    location /backend { return 200 "$echo_client_request_headers"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- response_body_filters eval
main::header_lines('x-user|x-auth')
--- response_body
X-Auth: via-
--- error_code: 200
--- response_headers
X-Identity-Status: OK
--- no_error_log
[error]



=== TEST 3: 302 is relayed to the client with its Location; the business service is not called
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 302 https://login.example.com/?next=%2Fapi; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 302
--- response_headers
Location: https://login.example.com/?next=%2Fapi
--- response_body_unlike: business reached
--- no_error_log
[error]



=== TEST 4: 401 is relayed with its body and WWW-Authenticate
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user {
            add_header WWW-Authenticate 'Bearer realm="api"' always;
            return 401 "session expired\n";
        }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api"
--- response_body
session expired
--- no_error_log
[error]



=== TEST 5: 401 with an empty body gives nginx's own page, and error_page applies
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { echo_status 401; echo -n ""; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        error_page 401 /login-page;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /login-page { return 200 "please log in\n"; }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 401
--- response_body
please log in



=== TEST 6: 401 with an empty body and no error_page gives nginx's standard 401 page
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { echo_status 401; echo -n ""; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 401
--- response_body_like: 401 Authorization Required



=== TEST 7: 403 is relayed with its body
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 403 "account suspended\n"; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 403
--- response_body
account suspended
--- no_error_log
[error]



=== TEST 8: 404 is relayed with its body
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 404 "no such session\n"; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 404
--- response_body
no such session



=== TEST 9: 429 is relayed with its body and Retry-After
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user {
            add_header Retry-After 30 always;
            return 429 "too many logins\n";
        }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 429
--- response_headers
Retry-After: 30
--- response_body
too many logins



=== TEST 10: a 403 refusal relays its body but not Retry-After or Location
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user {
            add_header Retry-After 30 always;
            add_header Location /elsewhere always;
            return 403 "no\n";
        }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 403
--- response_headers
!Retry-After
!Location
--- response_body
no



=== TEST 11: 500 from the user service takes the error path (503 by default)
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 500 "database down\n"; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 503
--- response_body_unlike: (business reached|database down)
--- error_log eval
qr/\[error\].*identity: .*500/



=== TEST 12: 502 from the user service takes the error path
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 502; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 503
--- response_body_unlike: business reached
--- error_log eval
qr/\[error\].*identity: /



=== TEST 13: no credential and identity_anonymous off: 401 without calling the user service
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 500 "must not be called\n"; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
        add_header X-Identity-Status $identity_status always;
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- error_code: 401
--- response_headers
X-Identity-Status: ANONYMOUS
--- response_body_unlike: business reached
--- no_error_log
[error]



=== TEST 14: no credential: error_page applies to the 401
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 500; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        error_page 401 = @login;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location @login { return 302 https://login.example.com/; }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- error_code: 302
--- response_headers
Location: https://login.example.com/



=== TEST 15: no credential and identity_anonymous on: passed upstream without identity
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 500 "must not be called\n"; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_anonymous on;
        identity_header X-User $identity;
        identity_header X-Kind "user";
        proxy_set_header X-Status $identity_status;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "user=[$http_x_user] kind=[$http_x_kind] status=$http_x_status\n"; }
--- request
GET /api/x
--- response_body
user=[] kind=[] status=ANONYMOUS
--- no_error_log
[error]



=== TEST 16: identity_anonymous on: a 401 refusal passes upstream without identity (DENIED)
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 401 "expired\n"; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_anonymous on;
        identity_header X-User $identity;
        identity_header X-Kind "user";
        proxy_set_header X-Status $identity_status;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "user=[$http_x_user] kind=[$http_x_kind] status=$http_x_status\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 200
--- response_body
user=[] kind=[] status=DENIED



=== TEST 17: identity_anonymous on: a 302 refusal passes upstream without identity
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 302 https://login.example.com/; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_anonymous on;
        identity_header X-User $identity;
        proxy_set_header X-Status $identity_status;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "user=[$http_x_user] status=$http_x_status\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 200
--- response_headers
!Location
--- response_body
user=[] status=DENIED



=== TEST 18: identity_anonymous on does not open the error path: 500 still gives 503
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 500; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_anonymous on;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 503
--- response_body_unlike: business reached



=== TEST 19: identity_anonymous on: a valid session still gets its identity
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 200 '{"id":"alice"}'; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_anonymous on;
        identity_header X-User-Id $identity_claim_id;
        proxy_set_header X-Status $identity_status;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "id=[$http_x_user_id] status=$http_x_status\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- response_body
id=[alice] status=OK



=== TEST 20: the user service decides per credential (good and bad sessions differ)
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user {
            if ($cookie_session = "good") { return 200 '{"id":"alice"}'; }
            return 401 "bad session\n";
        }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "id=$http_x_user_id\n"; }
--- pipelined_requests eval
["GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=good", "Cookie: session=bad"]
--- error_code eval
[200, 401]
--- response_body eval
["id=alice\n", "bad session\n"]
