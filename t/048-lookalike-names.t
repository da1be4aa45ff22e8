# Look-alike header names: with ignore_invalid_headers off nginx passes names holding
# '.' or '_' upstream, and CGI, PHP, WSGI and others fold '.', '_' and '-' alike
# (X.User becomes HTTP_X_USER), so each of them is a protected name's twin and goes.
# t/lib/Identity.pm builds each block's nginx config; the business service answers
# with the request headers it got.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;

identity_blocks(backend => 'return 200 "$echo_client_request_headers";');
no_shuffle();
run_tests();

__DATA__

=== TEST 1: ignore_invalid_headers off, underscores_in_headers off: X.User and its kin go
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_header X-User $identity_claim_id;
--- extra_config
    ignore_invalid_headers off;
--- more_headers
Cookie: session=s1
X.User: dot
x.user: lower-dot
X_User: underscore
X.user_Id: kept
X.Users: kept-too
--- response_body_filters eval
main::header_lines('x[-_.]users?(?:[-_.]id)?')
--- response_body
X.user_Id: kept
X.Users: kept-too
X-User: alice



=== TEST 2: ignore_invalid_headers off, underscores_in_headers on: the same
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_header X-User-Id $identity_claim_id;
--- extra_config
    ignore_invalid_headers off;
    underscores_in_headers on;
--- more_headers
Cookie: session=s1
X.User.Id: a
X_User.Id: b
x.user-id: c
X-User.Id: d
--- response_body_filters eval
main::header_lines('x[-_.]user[-_.]id')
--- response_body
X-User-Id: alice



=== TEST 3: identity_strip names are matched the same way, on the anonymous path too
--- api
identity_strip X-Forwarded-User;
identity_anonymous on;
--- extra_config
    ignore_invalid_headers off;
--- more_headers
X.Forwarded.User: mallory
X-Forwarded.User: mallory
X.Forwarded-User: mallory
X-Forwarded-Users: kept
--- response_body_filters eval
main::header_lines('x[-_.]forwarded[-_.]users?')
--- response_body
X-Forwarded-Users: kept



=== TEST 4: the user service does not see a dotted twin either
--- user_service
if ($echo_client_request_headers ~* "mallory") { return 200 '{"id":"the user service saw X.User"}'; }
return 200 '{"id":"clean"}';
--- api
identity_header X-User $identity_claim_id;
--- extra_config
    ignore_invalid_headers off;
--- more_headers
Cookie: session=s1
X.User: mallory
--- backend
return 200 "$http_x_user\n";
--- response_body
clean



=== TEST 5: look-alikes of the body and connection headers are withheld from the user service too
--- user_service
if ($echo_client_request_headers ~* "(transfer|content|keep)[._]") { return 200 '{"id":"the user service saw a look-alike"}'; }
return 200 '{"id":"clean"}';
--- api
identity_header X-User $identity_claim_id;
--- extra_config
    ignore_invalid_headers off;
--- more_headers
Cookie: session=s1
Transfer.Encoding: chunked
Content_Length: 99
Keep.Alive: 300
--- backend
return 200 "$http_x_user\n";
--- response_body
clean
