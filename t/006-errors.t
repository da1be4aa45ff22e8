# The error path: the user service gives no usable answer, or the identity cannot be
# sent safely. identity_on_error decides: a status code (503 by default) or pass.
# t/lib/Identity.pm builds each block's nginx config from its sections; a block with
# no --- user_service has none to reach. Every block sends Cookie: session=s1 unless
# it says otherwise.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;

identity_blocks(more_headers => "Cookie: session=s1");
no_shuffle();
run_tests();

__DATA__

=== TEST 1: user service unreachable: 503, logged at error level
--- api
add_header X-Identity-Status $identity_status always;
--- error_code: 503
--- response_headers
X-Identity-Status: ERROR
--- response_body_unlike: business reached
--- error_log eval
qr/\[error\] .*identity: /



=== TEST 2: user service too slow (proxy_read_timeout): 503
--- user_service
echo_sleep 2; echo '{"id":"alice"}';
--- identity
proxy_read_timeout 200ms;
--- error_code: 503
--- response_body_unlike: business reached
--- error_log eval
[qr/upstream timed out/, qr/\[error\] .*identity: /]
--- timeout: 1.5



=== TEST 3: a body over identity_max_size: 503 and a log line saying so
--- user_service
return 200 '{"id":"alice","pad":"0123456789012345678901234567890123456789"}';
--- api
identity_max_size 32;
identity_header X-User-Id $identity_claim_id;
--- error_code: 503
--- response_body_unlike: business reached
--- error_log eval
qr/\[error\] .*identity: .*identity_max_size/



=== TEST 4: a body of exactly identity_max_size bytes is accepted
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_max_size 14;
identity_header X-User-Id $identity_claim_id;
--- backend
return 200 "id=$http_x_user_id\n";
--- response_body
id=alice
--- no_error_log
[error]



=== TEST 5: the default limit (8k): a 9000-byte body takes the error path
--- user_service
echo -n '{"id":"alice","pad":"'; echo_duplicate 8978 "x"; echo -n '"}';
--- api
identity_header X-User-Id $identity_claim_id;
--- backend
return 200 "id=$http_x_user_id\n";
--- error_code: 503
--- error_log eval
qr/\[error\] .*identity: .*identity_max_size/



=== TEST 6: the default limit (8k): an 8000-byte body is accepted
--- user_service
echo -n '{"id":"alice","pad":"'; echo_duplicate 7978 "x"; echo -n '"}';
--- api
identity_header X-User-Id $identity_claim_id;
--- backend
return 200 "id=$http_x_user_id\n";
--- response_body
id=alice
--- no_error_log
[error]



=== TEST 7: a larger identity_max_size admits a body the default would refuse
--- user_service
echo -n '{"id":"alice","pad":"'; echo_duplicate 20000 "x"; echo -n '"}';
--- api
identity_max_size 32k;
identity_header X-User-Id $identity_claim_id;
--- backend
return 200 "id=$http_x_user_id\n";
--- response_body
id=alice
--- no_error_log
[error]



=== TEST 8: invalid JSON while a header needs $identity_claim_*: 503
--- user_service
return 200 'id=alice';
--- api
identity_header X-User-Id $identity_claim_id;
--- error_code: 503
--- response_body_unlike: business reached
--- error_log eval
qr/\[error\] .*identity: .*X-User-Id.*not valid JSON/



=== TEST 9: invalid JSON is fine when only $identity is used
--- user_service
return 200 'id=alice';
--- api
identity_header X-User $identity;
--- backend
return 200 "user=$http_x_user\n";
--- response_body
user=id=alice
--- no_error_log
[error]



=== TEST 10: a JSON body that is not an object, with claims: 503
--- user_service
return 200 '["alice"]';
--- api
identity_header X-User-Id $identity_claim_id;
--- error_code: 503
--- error_log eval
qr/\[error\] .*identity: .*not an object/



=== TEST 11: identity_on_error with another code answers that code
--- api
identity_on_error 502;
--- error_code: 502
--- response_body_like: 502 Bad Gateway



=== TEST 12: error_page applies to the on_error code
--- api
error_page 503 /maintenance;
--- extra_config
    location = /maintenance { return 200 "login is down, try later\n"; }
--- error_code: 503
--- response_body
login is down, try later



=== TEST 13: identity_on_error pass, unreachable: upstream without identity (ERROR)
--- api
identity_on_error pass;
identity_header X-User $identity;
proxy_set_header X-Status $identity_status;
--- backend
return 200 "$echo_client_request_headers";
--- extra_config
    underscores_in_headers on;
--- more_headers
Cookie: session=s1
X_User: mallory
--- response_body_filters eval
main::header_lines('x[-_]user|x-status')
--- response_body
X-Status: ERROR
--- error_log eval
qr/\[error\] .*identity: /



=== TEST 14: identity_on_error pass, too slow: upstream without identity
--- user_service
echo_sleep 2; echo '{"id":"alice"}';
--- identity
proxy_read_timeout 200ms;
--- api
identity_on_error pass;
identity_header X-User-Id $identity_claim_id;
proxy_set_header X-Status $identity_status;
--- backend
return 200 "id=[$http_x_user_id] status=$http_x_status\n";
--- response_body
id=[] status=ERROR
--- error_log eval
qr/\[error\] .*identity: /
--- timeout: 1.5



=== TEST 15: identity_on_error pass, body over the limit: upstream without identity
--- user_service
return 200 '{"id":"alice","pad":"0123456789012345678901234567890123456789"}';
--- api
identity_on_error pass;
identity_max_size 32;
identity_header X-User $identity;
identity_header X-User-Id $identity_claim_id;
proxy_set_header X-Status $identity_status;
--- backend
return 200 "user=[$http_x_user] id=[$http_x_user_id] status=$http_x_status\n";
--- response_body
user=[] id=[] status=ERROR



=== TEST 16: identity_on_error pass, invalid JSON with claims: no identity header at all
--- user_service
return 200 'not json';
--- api
identity_on_error pass;
identity_header X-User $identity;
identity_header X-User-Id $identity_claim_id;
proxy_set_header X-Status $identity_status;
--- backend
return 200 "user=[$http_x_user] id=[$http_x_user_id] status=$http_x_status\n";
--- response_body
user=[] id=[] status=ERROR



=== TEST 17: identity_on_error pass, 5xx: upstream without identity
--- user_service
return 500 '{"id":"alice"}';
--- api
identity_on_error pass;
identity_header X-User-Id $identity_claim_id;
proxy_set_header X-Status $identity_status;
--- backend
return 200 "id=[$http_x_user_id] status=$http_x_status\n";
--- response_body
id=[] status=ERROR



=== TEST 18: a claim holding CR LF is never sent: 503, the header is named, the value is not logged
--- user_service
return 200 '{"id":"alice\\r\\nX-Admin: true"}';
--- api
identity_header X-User-Id $identity_claim_id;
--- backend
return 200 "admin=$http_x_admin\n";
--- log_level: info
--- error_code: 503
--- response_body_unlike: admin=
--- error_log eval
qr/\[error\] .*identity: identity_header "X-User-Id" value holds a carriage return/
--- no_error_log
X-Admin



=== TEST 19: a claim holding a bare LF is never sent
--- user_service
return 200 '{"id":"alice\\nX-Admin: true"}';
--- api
identity_header X-User-Id $identity_claim_id;
--- backend
return 200 "admin=$http_x_admin\n";
--- log_level: info
--- error_code: 503
--- error_log
identity_header "X-User-Id" value holds a line feed
--- no_error_log
X-Admin



=== TEST 20: a claim holding NUL is never sent
--- user_service
return 200 '{"id":"alice\u0000root"}';
--- api
identity_header X-User-Id $identity_claim_id;
--- error_code: 503
--- error_log
identity_header "X-User-Id" value holds a NUL byte



=== TEST 21: a claim holding another control byte (ESC) is never sent
--- user_service
return 200 '{"id":"alice\u001b[0m"}';
--- api
identity_header X-User-Id $identity_claim_id;
--- error_code: 503
--- error_log
identity_header "X-User-Id" value holds the control byte 0x1b



=== TEST 22: a claim holding DEL is never sent
--- user_service
return 200 '{"id":"alice\u007f"}';
--- api
identity_header X-User-Id $identity_claim_id;
--- error_code: 503
--- error_log
identity_header "X-User-Id" value holds the control byte 0x7f



=== TEST 23: a raw (non-JSON) body with a line feed, in $identity, is never sent
--- user_service
return 200 "alice\nX-Admin: true";
--- api
identity_header X-User $identity;
--- backend
return 200 "admin=$http_x_admin\n";
--- error_code: 503
--- error_log
identity_header "X-User" value holds a line feed



=== TEST 24: an unsafe value with on_error pass: no identity header at all goes upstream
--- user_service
return 200 '{"id":"alice","name":"Al\\r\\nX-Admin: 1"}';
--- api
identity_on_error pass;
identity_header X-User-Id $identity_claim_id;
identity_header X-User-Name $identity_claim_name;
proxy_set_header X-Status $identity_status;
--- backend
return 200 "$echo_client_request_headers";
--- response_body_filters eval
main::header_lines('x-user-id|x-user-name|x-admin|x-status')
--- response_body
X-Status: ERROR



=== TEST 25: a tab in a claim is allowed
--- user_service
return 200 '{"id":"alice","name":"Al\\tice"}';
--- api
identity_header X-User-Name $identity_claim_name;
--- backend
return 200 "name=[$http_x_user_name]\n";
--- response_body eval
"name=[Al\tice]\n"
--- no_error_log
[error]



=== TEST 26: UTF-8 in a claim (bytes >= 0x80) is allowed
--- user_service
return 200 '{"id":"jos\u00e9","city":"Zürich"}';
--- api
identity_header X-User-Id $identity_claim_id;
identity_header X-City $identity_claim_city;
--- backend
return 200 "id=$http_x_user_id city=$http_x_city\n";
--- response_body
id=josé city=Zürich
--- no_error_log
[error]



=== TEST 27: a non-UTF-8 body passes as is in $identity (obs-text)
--- user_service eval
qq{return 200 "user-\xff\xfe-\xe9";}
--- api
identity_header X-User $identity;
--- backend
return 200 "user=$http_x_user\n";
--- response_body eval
"user=user-\xff\xfe-\xe9\n"
--- no_error_log
[error]



=== TEST 28: a non-UTF-8 body with $identity_claim_*: error path (not valid JSON)
--- user_service eval
qq{return 200 '{"id":"al\xffice"}';}
--- api
identity_header X-User-Id $identity_claim_id;
--- error_code: 503
--- response_body_unlike: business reached
--- error_log eval
qr/\[error\] .*identity: .*not valid JSON/



=== TEST 29: the identity body never appears in the log on the error path
--- user_service
return 200 '{"id":"alice","token":"tok-5ecret-d4e1","x":"a\r\nb"}';
--- api
identity_header X-User $identity;
--- more_headers
Cookie: session=c00kie-5ecret-88aa
--- log_level: info
--- error_code: 503
--- error_log eval
qr/\[error\] .*identity: identity_header "X-User"/
--- no_error_log
tok-5ecret-d4e1
c00kie-5ecret-88aa



=== TEST 30: the client going away while the user service is slow ends the request there: the business service is never asked, no worker crashes
--- user_service
echo_sleep 0.5; echo '{"id":"alice"}';
--- api
identity_header X-User-Id $identity_claim_id;
--- backend
return 200 "id=$http_x_user_id\n";
--- timeout: 0.1
--- abort
--- ignore_response
--- wait: 0.8
--- error_log eval
[qr/client prematurely closed connection, so upstream connection is closed too .*subrequest: "\/_identity"/,
 qr/identity subrequest done s:499 /,
 qr/http terminate request count/]
--- no_error_log eval
[qr/GET \/backend/, qr/\[alert\]/, qr/\[crit\]/, qr/exited on signal/]
