# What each kind of user-service answer does to the client's request.
# t/lib/Identity.pm builds each block's nginx config from its sections.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;

identity_blocks();
no_shuffle();
run_tests();

__DATA__

=== TEST 1: 200: the business service gets the identity headers
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_header X-User $identity;
identity_header X-User-Id $identity_claim_id;
--- backend
return 200 "user=$http_x_user id=$http_x_user_id\n";
--- more_headers
Cookie: session=s1
--- response_body
user={"id":"alice"} id=alice
--- error_code: 200
--- no_error_log
[error]



=== TEST 2: 204 with an empty body allows; headers made only of $identity are not set
--- user_service
return 204;
--- api
identity_header X-User $identity;
identity_header X-Auth "via-$identity";
add_header X-Identity-Status $identity_status always;
--- backend
return 200 "$echo_client_request_headers";
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
--- user_service
return 302 https://login.example.com/?next=%2Fapi;
--- more_headers
Cookie: session=s1
--- error_code: 302
--- response_headers
Location: https://login.example.com/?next=%2Fapi
--- response_body_unlike: business reached
--- no_error_log
[error]



=== TEST 4: 401 is relayed with its body and WWW-Authenticate
--- user_service
add_header WWW-Authenticate 'Bearer realm="api"' always;
return 401 "session expired\n";
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
--- user_service
echo_status 401; echo -n "";
--- api
error_page 401 /login-page;
--- extra_config
    location = /login-page { return 200 "please log in\n"; }
--- more_headers
Cookie: session=s1
--- error_code: 401
--- response_body
please log in



=== TEST 6: 401 with an empty body and no error_page gives nginx's standard 401 page
--- user_service
echo_status 401; echo -n "";
--- more_headers
Cookie: session=s1
--- error_code: 401
--- response_body_like: 401 Authorization Required



=== TEST 7: 403 is relayed with its body
--- user_service
return 403 "account suspended\n";
--- more_headers
Cookie: session=s1
--- error_code: 403
--- response_body
account suspended
--- no_error_log
[error]



=== TEST 8: 404 is relayed with its body
--- user_service
return 404 "no such session\n";
--- more_headers
Cookie: session=s1
--- error_code: 404
--- response_body
no such session



=== TEST 9: 429 is relayed with its body and Retry-After
--- user_service
add_header Retry-After 30 always;
return 429 "too many logins\n";
--- more_headers
Cookie: session=s1
--- error_code: 429
--- response_headers
Retry-After: 30
--- response_body
too many logins



=== TEST 10: a 403 refusal relays its body but not Retry-After or Location
--- user_service
add_header Retry-After 30 always;
add_header Location /elsewhere always;
return 403 "no\n";
--- more_headers
Cookie: session=s1
--- error_code: 403
--- response_headers
!Retry-After
!Location
--- response_body
no



=== TEST 11: 500 from the user service takes the error path (503 by default)
--- user_service
return 500 "database down\n";
--- more_headers
Cookie: session=s1
--- error_code: 503
--- response_body_unlike: (business reached|database down)
--- error_log eval
qr/\[error\].*identity: .*500/



=== TEST 12: 502 from the user service takes the error path
--- user_service
return 502;
--- more_headers
Cookie: session=s1
--- error_code: 503
--- response_body_unlike: business reached
--- error_log eval
qr/\[error\].*identity: /



=== TEST 13: no credential and identity_anonymous off: 401 without calling the user service
--- user_service
return 500 "must not be called\n";
--- api
add_header X-Identity-Status $identity_status always;
--- error_code: 401
--- response_headers
X-Identity-Status: ANONYMOUS
--- response_body_unlike: business reached
--- no_error_log
[error]



=== TEST 14: no credential: error_page applies to the 401
--- user_service
return 500;
--- api
error_page 401 = @login;
--- extra_config
    location @login { return 302 https://login.example.com/; }
--- error_code: 302
--- response_headers
Location: https://login.example.com/



=== TEST 15: no credential and identity_anonymous on: passed upstream without identity
--- user_service
return 500 "must not be called\n";
--- api
identity_anonymous on;
identity_header X-User $identity;
identity_header X-Kind "user";
proxy_set_header X-Status $identity_status;
--- backend
return 200 "user=[$http_x_user] kind=[$http_x_kind] status=$http_x_status\n";
--- response_body
user=[] kind=[] status=ANONYMOUS
--- no_error_log
[error]



=== TEST 16: identity_anonymous on: a 401 refusal passes upstream without identity (DENIED)
--- user_service
return 401 "expired\n";
--- api
identity_anonymous on;
identity_header X-User $identity;
identity_header X-Kind "user";
proxy_set_header X-Status $identity_status;
--- backend
return 200 "user=[$http_x_user] kind=[$http_x_kind] status=$http_x_status\n";
--- more_headers
Cookie: session=s1
--- error_code: 200
--- response_body
user=[] kind=[] status=DENIED



=== TEST 17: identity_anonymous on: a 302 refusal passes upstream without identity
--- user_service
return 302 https://login.example.com/;
--- api
identity_anonymous on;
identity_header X-User $identity;
proxy_set_header X-Status $identity_status;
--- backend
return 200 "user=[$http_x_user] status=$http_x_status\n";
--- more_headers
Cookie: session=s1
--- error_code: 200
--- response_headers
!Location
--- response_body
user=[] status=DENIED



=== TEST 18: identity_anonymous on does not open the error path: 500 still gives 503
--- user_service
return 500;
--- api
identity_anonymous on;
--- more_headers
Cookie: session=s1
--- error_code: 503
--- response_body_unlike: business reached



=== TEST 19: identity_anonymous on: a valid session still gets its identity
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_anonymous on;
identity_header X-User-Id $identity_claim_id;
proxy_set_header X-Status $identity_status;
--- backend
return 200 "id=[$http_x_user_id] status=$http_x_status\n";
--- more_headers
Cookie: session=s1
--- response_body
id=[alice] status=OK



=== TEST 20: the user service decides per credential (good and bad sessions differ)
--- user_service
if ($cookie_session = "good") { return 200 '{"id":"alice"}'; }
return 401 "bad session\n";
--- api
identity_header X-User-Id $identity_claim_id;
--- backend
return 200 "id=$http_x_user_id\n";
--- pipelined_requests eval
["GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=good", "Cookie: session=bad"]
--- error_code eval
[200, 401]
--- response_body eval
["id=alice\n", "bad session\n"]
