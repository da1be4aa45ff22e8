# The session cookie: how it is found, what the user service sees, and
# identity_strip_cookie.
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

=== TEST 1: identity_strip_cookie on: only the session cookie is removed upstream
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user {
            if ($cookie_session != "s1") { return 401 "user service did not get the session\n"; }
            return 200 '{"id":"alice"}';
        }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_strip_cookie on;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "$echo_client_request_headers"; }
--- request
GET /api/x
--- more_headers
Cookie: theme=dark; session=s1; lang=fr
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: theme=dark; lang=fr



=== TEST 2: identity_strip_cookie on: a Cookie line holding only the session is removed
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user {
            if ($cookie_session != "s1") { return 401 "user service did not get the session\n"; }
            return 200 '{"id":"alice"}';
        }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_strip_cookie on;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "[$echo_client_request_headers]"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- response_body_like: ^\[GET /backend HTTP/1\.0\r\n(?![\s\S]*[Cc]ookie)[\s\S]*\]$



=== TEST 3: identity_strip_cookie off (the default): the session cookie goes upstream
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 200 '{"id":"alice"}'; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "$echo_client_request_headers"; }
--- request
GET /api/x
--- more_headers
Cookie: theme=dark; session=s1
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: theme=dark; session=s1



=== TEST 4: two Cookie lines, the session in the second: it is found and sent to the user service
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 200 '{"sid":"$cookie_session"}'; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_header X-Sid $identity_claim_sid;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "sid=$http_x_sid\n"; }
--- request
GET /api/x
--- more_headers
Cookie: theme=dark
Cookie: session=s2
--- response_body
sid=s2



=== TEST 5: two Cookie lines with identity_strip_cookie on: the session's line goes, the other stays
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 200 '{"sid":"$cookie_session"}'; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_strip_cookie on;
        identity_header X-Sid $identity_claim_sid;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "$echo_client_request_headers"; }
--- request
GET /api/x
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
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: xsession=s1; session_old=s2; sessions=s3
--- error_code: 401
--- response_body_unlike: (business reached|must not be called)
--- no_error_log
[error]



=== TEST 7: identity_strip_cookie on keeps cookies whose names merely contain the session's
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 200 '{"id":"alice"}'; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_strip_cookie on;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "$echo_client_request_headers"; }
--- request
GET /api/x
--- more_headers
Cookie: xsession=a; session=s1; session_old=b
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: xsession=a; session_old=b



=== TEST 8: an empty session cookie is no credential: 401, no call
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 500 "must not be called\n"; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        add_header X-Identity-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=; theme=dark
--- error_code: 401
--- response_headers
X-Identity-Status: ANONYMOUS
--- no_error_log
[error]



=== TEST 9: a quoted session value reaches the user service as sent, quotes included
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user {
            if ($http_cookie != 'session="s1"') { return 401 "unexpected cookie\n"; }
            return 200 'sid=$cookie_session';
        }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_header X-Seen $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "$http_x_seen\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session="s1"
--- response_body
sid="s1"



=== TEST 10: identity_strip_cookie on removes a quoted session value too
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 200 '{"id":"alice"}'; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_strip_cookie on;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "$echo_client_request_headers"; }
--- request
GET /api/x
--- more_headers
Cookie: a=1;session="s1";b=2
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: a=1; b=2



=== TEST 11: a 6 KB session cookie reaches the user service whole
--- http_config
    server {
        listen 127.0.0.1:8101;
        large_client_header_buffers 4 16k;
        location /user { return 200 '$cookie_session'; }
    }
--- config
    large_client_header_buffers 4 16k;
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_header X-Seen $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "$http_x_seen"; }
--- request
GET /api/x
--- more_headers eval
"Cookie: theme=dark; session=" . ("0123456789abcdef" x 384) . "; lang=fr"
--- response_body eval
"0123456789abcdef" x 384



=== TEST 12: a custom cookie name in the key (${cookie_SID}) is the one stripped
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user {
            if ($cookie_sid != "abc") { return 401 "user service did not get the sid\n"; }
            return 200 '{"id":"alice"}';
        }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_key ${cookie_SID};
        identity_strip_cookie on;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "$echo_client_request_headers"; }
--- request
GET /api/x
--- more_headers
Cookie: session=keep; SID=abc
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: session=keep



=== TEST 13: identity_key from a header: the user service sees Authorization
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user {
            if ($http_authorization != "Bearer t0k3n") { return 401 "no token\n"; }
            return 200 '{"id":"bob"}';
        }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_key $http_authorization;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "id=$http_x_user_id\n"; }
--- request
GET /api/x
--- more_headers
Authorization: Bearer t0k3n
--- response_body
id=bob



=== TEST 14: identity_key from a header: a session cookie alone is no credential
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 500 "must not be called\n"; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:8101/user; }
    location /api/ {
        identity_request /_identity;
        identity_key $http_authorization;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend { return 200 "business reached\n"; }
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- error_code: 401



=== TEST 15: the session cookie value never appears in the error log
--- http_config
    server {
        listen 127.0.0.1:8101;
        location /user { return 500 "secret-identity-body-7f3a"; }
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
--- log_level: info
--- more_headers
Cookie: session=s3cr3t-c00kie-9b2e
--- error_code: 503
--- error_log eval
qr/\[error\].*identity: /
--- no_error_log
s3cr3t-c00kie-9b2e
secret-identity-body-7f3a
