# Internal redirects (try_files, error_page, rewrite ... last). nginx clears module
# contexts on a redirect; the module finds its own again, so a location asking the same
# question (identity_request, identity_key, zone) reuses the answer under its own policy
# and identity headers, even after identity_strip_cookie removed the cookie; a location
# asking another question gets an exchange of its own. The session cookie is stripped on
# every verdict, so an error_page fallback never gets it. (The user service refuses with
# an empty body, so the refusal is nginx's and error_page applies.)
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;

our $HttpConfig = <<'_EOC_';
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location /user {
            if ($cookie_session = "good") { return 200 '{"id":"alice"}'; }
            echo_status 401; echo -n "";
        }
        location /admin {
            if ($cookie_session = "good") { return 200 '{"id":"bob"}'; }
            echo_status 401; echo -n "";
        }
    }
_EOC_

our $Config = <<'_EOC_';
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user; }
    location = /_identity_admin { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/admin; }
    location = /_identity_down { internal; return 500; }
    location /backend {
        return 200 "$echo_client_request_headers";
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig);
    $block->set_value("config", $Config . ($block->config // ""));
    $block->set_value("more_headers", "Cookie: session=good; theme=dark")
        unless defined $block->more_headers;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: try_files into a named location asking the same question, after the cookie was stripped: the identity is reused, once
--- config
    location /a/ {
        identity_request /_identity;
        identity_strip_cookie on;
        identity_header X-User $identity;
        try_files /nonexistent @same;
    }
    location @same {
        identity_request /_identity;
        identity_strip_cookie on;
        identity_header X-User $identity;
        add_header X-Status $identity_status always;
        add_header X-Id $identity_claim_id always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request
GET /a/x
--- response_body_filters eval
main::header_lines('x-user|cookie')
--- response_body
Cookie: theme=dark
X-User: {"id":"alice"}
--- response_headers
X-Status: OK
X-Id: alice



=== TEST 2: error_page into a location asking the same question, with other identity headers: its own headers, from the same answer
--- config
    location /b/ {
        identity_request /_identity;
        identity_strip_cookie on;
        identity_header X-User $identity;
        error_page 404 = /c$uri;
        try_files /nonexistent =404;
    }
    location /c/ {
        identity_request /_identity;
        identity_strip_cookie on;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request
GET /b/x
--- response_body_filters eval
main::header_lines('x-user|x-user-id|cookie')
--- response_body
Cookie: theme=dark
X-User-Id: alice



=== TEST 3: error_page, then rewrite ... last, into a location asking the same question
--- config
    location /b/ {
        identity_request /_identity;
        identity_strip_cookie on;
        identity_header X-User $identity;
        error_page 404 = /r$uri;
        try_files /nonexistent =404;
    }
    location /r/ {
        rewrite ^/r/(.*)$ /c/$1 last;
    }
    location /c/ {
        identity_request /_identity;
        identity_strip_cookie on;
        identity_header X-User $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request
GET /b/x
--- response_body_filters eval
main::header_lines('x-user|cookie')
--- response_body
Cookie: theme=dark
X-User: {"id":"alice"}



=== TEST 4: a redirect into a location asking another question gets an exchange of its own
--- config
    location /a/ {
        identity_request /_identity;
        identity_header X-User $identity;
        try_files /nonexistent @admin;
    }
    location @admin {
        identity_request /_identity_admin;
        identity_header X-User $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request
GET /a/x
--- response_body_filters eval
main::header_lines('x-user')
--- response_body
X-User: {"id":"bob"}



=== TEST 5: another question after the cookie was stripped: no credential left, refused (fail closed)
--- config
    location /a/ {
        identity_request /_identity;
        identity_strip_cookie on;
        identity_header X-User $identity;
        try_files /nonexistent @admin;
    }
    location @admin {
        identity_request /_identity_admin;
        identity_header X-User $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request
GET /a/x
--- error_code: 401



=== TEST 6: a refusal relayed through error_page: the fallback does not get the session cookie
--- config
    location /f/ {
        identity_request /_identity;
        identity_strip_cookie on;
        error_page 401 = /fallback$uri;
    }
    location /fallback/ {
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- more_headers
Cookie: session=bad; theme=dark
--- request
GET /f/x
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: theme=dark



=== TEST 7: a failing user service, through error_page: the fallback does not get the session cookie
--- config
    location /f/ {
        identity_request /_identity_down;
        identity_strip_cookie on;
        error_page 503 = /fallback$uri;
    }
    location /fallback/ {
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request
GET /f/x
--- response_body_filters eval
main::header_lines('cookie')
--- response_body
Cookie: theme=dark



=== TEST 8: a redirect into an open location keeps the variables' values
--- config
    location /a/ {
        identity_request /_identity;
        identity_header X-User $identity;
        try_files /nonexistent @open;
    }
    location @open {
        add_header X-Status $identity_status always;
        add_header X-Id $identity_claim_id always;
        return 200 "open\n";
    }
--- request
GET /a/x
--- response_headers
X-Status: OK
X-Id: alice
--- response_body
open



=== TEST 9: a request nginx refuses while reading its headers (no Host) reaches error_page without post-read: the server's protected names still go
--- config
    error_page 400 /oops;
    location /api/ {
        identity_request /_identity;
        identity_header X-User $identity;
    }
    location = /oops {
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- raw_request eval
"GET /api/x HTTP/1.1\r\nX-User: {\"id\":\"admin\"}\r\nX_User: admin\r\nConnection: close\r\n\r\n"
--- response_body_filters eval
sub { my $b = shift; ($b =~ /X-User|X_User|admin/i ? "forged header reached the backend\n" : "") . ($b =~ /^GET \/backend/ ? "backend reached\n" : "") }
--- response_body
backend reached
--- error_code: 400



=== TEST 10: the identity subrequest does not leave the main request's $http_upgrade "not found" (it never sees Upgrade)
--- config
    location /api/ {
        identity_request /_identity_probe;
        identity_header X-User $identity;
        proxy_set_header X-Seen-Upgrade "up=$http_upgrade";
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /_identity_probe {
        internal;
        proxy_set_header X-Probe "$http_upgrade";
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user;
    }
--- more_headers
Cookie: session=good
Upgrade: websocket
--- request
GET /api/x
--- response_body_filters eval
main::header_lines('x-seen-upgrade')
--- response_body
X-Seen-Upgrade: up=websocket
