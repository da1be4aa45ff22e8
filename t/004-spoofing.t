# Anti-spoofing: client headers named like identity headers never get through.
# t/lib/Identity.pm builds each block's nginx config from its sections; here the
# business service answers with the request headers it got.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;

identity_blocks(backend => 'return 200 "$echo_client_request_headers";');
no_shuffle();
run_tests();

__DATA__

=== TEST 1: allow path: a spoofed X-User is replaced by the real one (one copy only)
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_header X-User $identity_claim_id;
--- more_headers
Cookie: session=s1
X-User: mallory
--- response_body_filters eval
main::header_lines('x[-_]user')
--- response_body
X-User: alice



=== TEST 2: allow path: all copies, any case, with underscores, are removed
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_header X-User-Id $identity_claim_id;
--- extra_config
    underscores_in_headers on;
--- more_headers
x-user-id: m1
Cookie: session=s1
X-USER-ID: m2
X_User_Id: m3
x_user-id: m4
X-User-Id: m5
--- response_body_filters eval
main::header_lines('x[-_]user[-_]id')
--- response_body
X-User-Id: alice



=== TEST 3: look-alike names that are not identity headers are kept
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_header X-User $identity_claim_id;
--- extra_config
    underscores_in_headers on;
--- more_headers
Cookie: session=s1
X-Users: k1
X-User-Agent: k2
XUser: k3
--- response_body_filters eval
main::header_lines('x[-_]?user[-_a-z]*')
--- response_body
X-Users: k1
X-User-Agent: k2
XUser: k3
X-User: alice



=== TEST 4: the user service does not see spoofed identity or stripped headers
--- user_service
return 200 "$echo_client_request_headers";
--- http_config
    underscores_in_headers on;
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user; }
    location /api/ {
        identity_request /_identity;
        identity_header X-User-Id "checked";
        identity_strip X-Internal;
        echo -n $identity;
    }
--- more_headers
X-User-Id: mallory
Cookie: session=s1
X_USER_ID: mallory2
X-Internal: yes
x-internal: again
--- response_body_filters eval
main::header_lines('x[-_]user[-_]id|x[-_]internal|cookie')
--- response_body chomp
Cookie: session=s1



=== TEST 5: anonymous path (no credential): spoofed headers are removed
--- user_service
return 500;
--- api
identity_anonymous on;
identity_header X-User $identity_claim_id;
identity_strip X-Internal;
proxy_set_header X-Status $identity_status;
--- extra_config
    underscores_in_headers on;
--- more_headers
X-User: mallory
x_user: mallory2
X-Internal: 1
--- response_body_filters eval
main::header_lines('x[-_]user|x[-_]internal|x-status')
--- response_body
X-Status: ANONYMOUS



=== TEST 6: refusal with identity_anonymous on: spoofed headers are removed
--- user_service
return 403 "no\n";
--- api
identity_anonymous on;
identity_header X-User $identity_claim_id;
proxy_set_header X-Status $identity_status;
--- extra_config
    underscores_in_headers on;
--- more_headers
Cookie: session=s1
X-User: mallory
X_USER: mallory2
--- response_body_filters eval
main::header_lines('x[-_]user|x-status')
--- response_body
X-Status: DENIED



=== TEST 7: identity_on_error pass: spoofed headers are removed
--- user_service
return 500;
--- api
identity_on_error pass;
identity_header X-User $identity_claim_id;
proxy_set_header X-Status $identity_status;
--- extra_config
    underscores_in_headers on;
--- more_headers
Cookie: session=s1
X-User: mallory
x_User: mallory2
--- response_body_filters eval
main::header_lines('x[-_]user|x-status')
--- response_body
X-Status: ERROR



=== TEST 8: identity_request off with inherited identity_header names: spoofed headers are removed
--- config
    underscores_in_headers on;
    identity_header X-User $identity_claim_id;
    location /public/ {
        proxy_set_header X-Status $identity_status;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "$echo_client_request_headers"; }
--- request
GET /public/x
--- more_headers
X-User: mallory
X_USER: mallory2
--- response_body_filters eval
main::header_lines('x[-_]user|x-status')
--- response_body
X-Status: BYPASS



=== TEST 9: identity_strip at http level applies where the module is otherwise unused
--- http_config
    identity_strip X-Internal-Role;
--- config
    underscores_in_headers on;
    location /public/ { proxy_pass http://127.0.0.1:$server_port/backend; }
    location /backend { return 200 "$echo_client_request_headers"; }
--- request
GET /public/x
--- more_headers
X-Internal-Role: admin
x_internal_role: admin
X-Other: kept
--- response_body_filters eval
main::header_lines('x[-_]internal[-_]role|x-other')
--- response_body
X-Other: kept



=== TEST 10: identity_strip removes a header on the allow path too
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_header X-User $identity_claim_id;
identity_strip X-Internal-Role;
identity_strip X-Debug;
--- more_headers
Cookie: session=s1
X-Internal-Role: admin
X-Debug: 1
X-Debug: 2
--- response_body_filters eval
main::header_lines('x-user|x-internal-role|x-debug')
--- response_body
X-User: alice



=== TEST 11: names from enclosing levels stay protected when a location sets its own
--- user_service
return 200 '{"id":"alice","account":"acme"}';
--- http_config
    identity_strip X-From-Http;
--- extra_config
    underscores_in_headers on;
    identity_header X-User $identity_claim_id;
    identity_strip X-From-Server;
--- api
identity_header X-Account $identity_claim_account;
--- more_headers
Cookie: session=s1
X-User: mallory
X-From-Http: 1
X_From_Server: 2
X-Account: evil
--- response_body_filters eval
main::header_lines('x[-_]user|x[-_]from[-_a-z]+|x-account')
--- response_body
X-Account: acme



=== TEST 12: a spoofed header is removed even when the real value is empty (claim absent)
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_header X-User $identity_claim_id;
identity_header X-Role $identity_claim_role;
--- more_headers
Cookie: session=s1
X-Role: admin
--- response_body_filters eval
main::header_lines('x-user|x-role')
--- response_body
X-User: alice



=== TEST 13: nested locations: the outer location's identity header names stay protected
--- user_service
return 200 '{"id":"alice","team":"red"}';
--- api
identity_header X-User $identity_claim_id;
location /api/team/ {
    identity_header X-Team $identity_claim_team;
    proxy_pass http://127.0.0.1:$server_port/backend;
}
--- request
GET /api/team/x
--- more_headers
Cookie: session=s1
X-User: mallory
X-Team: blue
--- response_body_filters eval
main::header_lines('x-user|x-team')
--- response_body
X-Team: red



=== TEST 14: an http-level identity_header name stays protected when the server sets its own
--- user_service
return 200 '{"id":"alice","team":"red"}';
--- http_config
    identity_header X-User $identity_claim_id;
--- extra_config
    identity_header X-Team $identity_claim_team;
--- more_headers
Cookie: session=s1
X-User: mallory
X-Team: blue
--- response_body_filters eval
main::header_lines('x-user|x-team')
--- response_body
X-Team: red
