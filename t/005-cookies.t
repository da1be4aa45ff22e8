# The session cookie: how it is found, what the user service sees, and
# identity_strip_cookie.
# t/lib/Identity.pm builds each block's nginx config from its sections; here the
# business service answers with the request headers it got.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;

identity_blocks(backend => 'return 200 "$echo_client_request_headers";');
no_shuffle();
run_tests();

__DATA__

=== TEST 1: identity_strip_cookie on: only the session cookie is removed upstream
--- user_service
if ($cookie_session != "s1") { return 401 "user service did not get the session\n"; }
return 200 '{"id":"alice"}';
--- api
identity_strip_cookie on;
--- more_headers
Cookie: theme=dark; session=s1; lang=fr
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: theme=dark; lang=fr



=== TEST 2: identity_strip_cookie on: a Cookie line holding only the session is removed
--- user_service
if ($cookie_session != "s1") { return 401 "user service did not get the session\n"; }
return 200 '{"id":"alice"}';
--- api
identity_strip_cookie on;
--- backend
return 200 "[$echo_client_request_headers]";
--- more_headers
Cookie: session=s1
--- response_body_like: ^\[GET /backend HTTP/1\.0\r\n(?![\s\S]*[Cc]ookie)[\s\S]*\]$



=== TEST 3: identity_strip_cookie off (the default): the session cookie goes upstream
--- user_service
return 200 '{"id":"alice"}';
--- more_headers
Cookie: theme=dark; session=s1
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: theme=dark; session=s1



=== TEST 4: two Cookie lines, the session in the second: it is found and sent to the user service
--- user_service
return 200 '{"sid":"$cookie_session"}';
--- api
identity_header X-Sid $identity_claim_sid;
--- backend
return 200 "sid=$http_x_sid\n";
--- more_headers
Cookie: theme=dark
Cookie: session=s2
--- response_body
sid=s2



=== TEST 5: two Cookie lines with identity_strip_cookie on: the session's line goes, the other stays
--- user_service
return 200 '{"sid":"$cookie_session"}';
--- api
identity_strip_cookie on;
identity_header X-Sid $identity_claim_sid;
--- more_headers
Cookie: theme=dark
Cookie: session=s2; lang=fr
--- response_body_filters eval
main::header_lines('cookie|x-sid')
--- response_body
Cookie: theme=dark
Cookie: lang=fr
X-Sid: s2



=== TEST 6: cookies whose names contain "session" are not the session: 401, no call
--- user_service
return 500 "must not be called\n";
--- backend
return 200 "business reached\n";
--- more_headers
Cookie: xsession=s1; session_old=s2; sessions=s3
--- error_code: 401
--- response_body_unlike: (business reached|must not be called)
--- no_error_log
[error]



=== TEST 7: identity_strip_cookie on keeps cookies whose names merely contain the session's
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_strip_cookie on;
--- more_headers
Cookie: xsession=a; session=s1; session_old=b
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: xsession=a; session_old=b



=== TEST 8: an empty session cookie is no credential: 401, no call
--- user_service
return 500 "must not be called\n";
--- api
add_header X-Identity-Status $identity_status always;
--- backend
return 200 "business reached\n";
--- more_headers
Cookie: session=; theme=dark
--- error_code: 401
--- response_headers
X-Identity-Status: ANONYMOUS
--- no_error_log
[error]



=== TEST 9: a quoted session value reaches the user service as sent, quotes included
--- user_service
if ($http_cookie != 'session="s1"') { return 401 "unexpected cookie\n"; }
return 200 'sid=$cookie_session';
--- api
identity_header X-Seen $identity;
--- backend
return 200 "$http_x_seen\n";
--- more_headers
Cookie: session="s1"
--- response_body
sid="s1"



=== TEST 10: identity_strip_cookie on removes a quoted session value too
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_strip_cookie on;
--- more_headers
Cookie: a=1;session="s1";b=2
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: a=1; b=2



=== TEST 11: a 6 KB session cookie reaches the user service whole
--- user_service
return 200 '$cookie_session';
--- http_config
    large_client_header_buffers 4 16k;
--- api
identity_header X-Seen $identity;
--- backend
return 200 "$http_x_seen";
--- more_headers eval
"Cookie: theme=dark; session=" . ("0123456789abcdef" x 384) . "; lang=fr"
--- response_body eval
"0123456789abcdef" x 384



=== TEST 12: a custom cookie name in the key (${cookie_SID}) is the one stripped
--- user_service
if ($cookie_sid != "abc") { return 401 "user service did not get the sid\n"; }
return 200 '{"id":"alice"}';
--- api
identity_key ${cookie_SID};
identity_strip_cookie on;
--- more_headers
Cookie: session=keep; SID=abc
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: session=keep



=== TEST 13: identity_key from a header: the user service sees Authorization
--- user_service
if ($http_authorization != "Bearer t0k3n") { return 401 "no token\n"; }
return 200 '{"id":"bob"}';
--- api
identity_key $http_authorization;
identity_header X-User-Id $identity_claim_id;
--- backend
return 200 "id=$http_x_user_id\n";
--- more_headers
Authorization: Bearer t0k3n
--- response_body
id=bob



=== TEST 14: identity_key from a header: a session cookie alone is no credential
--- user_service
return 500 "must not be called\n";
--- api
identity_key $http_authorization;
--- backend
return 200 "business reached\n";
--- more_headers
Cookie: session=s1
--- error_code: 401



=== TEST 15: the session cookie value never appears in the error log
--- user_service
return 500 "secret-identity-body-7f3a";
--- backend
return 200 "business reached\n";
--- log_level: info
--- more_headers
Cookie: session=s3cr3t-c00kie-9b2e
--- error_code: 503
--- error_log eval
qr/\[error\].*identity: /
--- no_error_log
s3cr3t-c00kie-9b2e
secret-identity-body-7f3a
