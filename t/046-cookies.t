# The session cookie as nginx reads it, and as upstreams might: a credential cookie sent
# twice is refused, and identity_strip_cookie removes everything nginx (1.22 and 1.28
# alike) or a common framework could read as the session, comma-joined lines included.
# t/lib/Identity.pm builds each block's nginx config from its sections; here the
# business service answers with the request headers it got.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;

identity_blocks(backend => 'return 200 "$echo_client_request_headers";');
no_shuffle();
run_tests();

__DATA__

=== TEST 1: cookie tossing: session=T; session=REAL is refused with 400 and stores nothing under T
The user service authenticates the last copy (as Django does), the key is the first:
without the refusal, alice's identity is cached under T and served to whoever sends T.
--- user_service
if ($last_session = "REAL") { return 200 '{"id":"alice"}'; }
return 401;
--- http_config
    identity_cache_zone users:1m;
    map $http_cookie $last_session { "~(?:^|[;,]\s*)session=(?<s>[^;,]*)$" $s; }
--- api
identity_cache users;
identity_header X-User-Id $identity_claim_id;
add_header X-Status $identity_status always;
--- backend
return 200 "id=$http_x_user_id\n";
--- request eval
["GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=T; session=REAL\n", "Cookie: session=T\n"]
--- error_code eval
[400, 401]
--- response_body_unlike eval
["id=alice", "id=alice"]



=== TEST 2: the same cookie in two Cookie lines is refused, even with equal values
--- user_service
return 200 '{"id":"alice"}';
--- more_headers
Cookie: session=s1
Cookie: theme=dark; session=s1
--- error_code: 400
--- response_body_unlike: (business reached|GET /backend)
--- error_log
identity: client sent the cookie "session" more than once
--- no_error_log
http subrequest "/_identity



=== TEST 3: case variants count as the same cookie (nginx reads $cookie_session case-insensitively)
--- user_service
return 200 '{"id":"alice"}';
--- more_headers
Cookie: Session=T; session=REAL
--- error_code: 400
--- no_error_log
http subrequest "/_identity



=== TEST 4: a comma-joined copy counts (nginx starts a cookie after ',')
--- user_service
return 200 '{"id":"alice"}';
--- more_headers
Cookie: session=T,session=REAL
--- error_code: 400



=== TEST 5: a tab-led, a spaced and a %-encoded copy count (frameworks trim and decode names)
--- user_service
return 200 '{"id":"alice"}';
--- more_headers eval
["Cookie: session=T;\tsession=REAL\n", "Cookie: session =T; sess%69on=REAL\n"]
--- request eval
["GET /api/x", "GET /api/x"]
--- error_code eval
[400, 400]



=== TEST 6: a single session beside look-alike names is not refused
--- user_service
return 200 '{"id":"$cookie_session"}';
--- api
identity_header X-User-Id $identity_claim_id;
--- backend
return 200 "id=$http_x_user_id\n";
--- more_headers
Cookie: xsession=a; session_old=b; session=s1; sessions=c
Cookie: theme=dark
--- response_body
id=s1



=== TEST 7: a custom key cookie (${cookie_SID}) sent twice is refused; the default one is not looked at
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_key ${cookie_SID};
--- more_headers
Cookie: session=a; session=b; sid=1; SID=2
--- error_code: 400
--- error_log
identity: client sent the cookie "sid" more than once



=== TEST 8: a comma-joined line: nginx reads the session after the comma, and the strip removes it
--- user_service
if ($cookie_session != "s1") { return 401 "user service did not get the session\n"; }
return 200 '{"id":"alice"}';
--- api
identity_strip_cookie on;
--- more_headers
Cookie: theme=dark,session=s1; lang=fr
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: lang=fr



=== TEST 9: comma-joined, the session first: nginx's value runs to ';', and the whole piece goes
--- user_service
if ($cookie_session != "s1,theme=dark") { return 401 "user service did not get what nginx reads\n"; }
return 200 '{"id":"alice"}';
--- api
identity_strip_cookie on;
--- more_headers
Cookie: lang=fr; session=s1,theme=dark
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: lang=fr



=== TEST 10: case and spaces: nginx reads "SESSION = s1" as the session, and it is stripped
--- user_service
if ($cookie_session != "s1") { return 401 "user service did not get the session\n"; }
return 200 '{"id":"alice"}';
--- api
identity_strip_cookie on;
--- more_headers
Cookie: lang=fr;  SESSION = s1
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: lang=fr



=== TEST 11: a quoted value holding ';' is cut where nginx cuts it, and nothing of the session is left
--- user_service
if ($cookie_session != 'T"') { return 401 "user service did not get what nginx reads\n"; }
return 200 '{"id":"alice"}';
--- api
identity_strip_cookie on;
--- more_headers
Cookie: a="x;session=T"; lang=fr
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: a="x; lang=fr



=== TEST 12: after the strip, $http_cookie holds no session either
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_strip_cookie on;
proxy_set_header X-Seen "[$http_cookie]";
--- more_headers
Cookie: theme=dark,session=s1
Cookie: lang=fr
--- response_body_filters eval
main::header_lines('cookie|x-seen')
--- response_body
X-Seen: [lang=fr]
Cookie: lang=fr



=== TEST 13: after the strip, $cookie_session (read earlier for the key) is empty too
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_strip_cookie on;
proxy_set_header X-Seen "[$cookie_session|$http_cookie]";
--- more_headers
Cookie: theme=dark; session=s1
--- response_body_filters eval
main::header_lines('cookie|x-seen')
--- response_body
X-Seen: [|theme=dark]
Cookie: theme=dark
