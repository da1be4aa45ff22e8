# A revoked session must not come back as STALE. With identity_cache_use_stale, an
# expired entry is kept to be served while the user service fails; but once the user
# service has answered again (any 2xx, 3xx or 4xx), that answer is the last word, whether
# or not it may be cached, and the old identity must never be served again. The client
# picks the mock user service's answer with X-Mode; the cache key is the session cookie.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
# The backend in a server of its own: the gateway's server strips the identity names.
use Identity ();

our $HttpConfig = <<'_EOC_';
    identity_cache_zone users:1m;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        location /user {
            if ($http_x_mode = "fail") { return 502; }
            if ($http_x_mode = "deny") { return 401 "denied\n"; }
            if ($http_x_mode = "login") { return 302 /login; }
            if ($http_x_mode = "gone") { return 404 "no such session\n"; }
            if ($http_x_mode = "deny-nostore") {
                add_header Cache-Control "no-store" always;
                return 401 "denied\n";
            }
            if ($http_x_mode = "nostore") {
                add_header Cache-Control "no-store";
                return 200 '{"id":"nostore"}';
            }
            return 200 '{"id":"$http_x_mode"}';
        }
    }
_EOC_

our $Config = <<'_EOC_';
    location = /_identity {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/user;
    }
    location = /sleep1 { echo_sleep 1.2; echo slept; }
    location /backend {
        return 200 "id=$http_x_user_id\n";
    }
_EOC_

# `--- api` lines go into the protected location; every block caches 200 for 1s and keeps
# expired entries 30s for stale use.
add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    my $api = "    location /api/ {\n"
            . "        identity_request /_identity;\n"
            . "        identity_cache users;\n"
            . "        identity_cache_valid 200 1s;\n"
            . "        identity_cache_use_stale 30s;\n"
            . join("", map { "    $_\n" } grep { /\S/ } split /\n/, ($block->api // ""))
            . "        identity_header X-User-Id \$identity_claim_id;\n"
            . "        add_header X-Status \$identity_status always;\n"
            . "        proxy_pass http://127.0.0.1:\$server_port/backend;\n"
            . "    }\n";
    $block->set_value("config", $Config . $api);
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a 401 that may not be cached (no identity_cache_valid rule) ends the stale entry
--- request eval
["GET /api/x", "GET /sleep1", "GET /api/x", "GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "", "Cookie: session=s1\nX-Mode: deny", "Cookie: session=s1\nX-Mode: fail", "Cookie: session=s1\nX-Mode: bob"]
--- error_code eval
[200, 200, 401, 503, 200]
--- response_body_like eval
["^id=alice\$", "slept", "denied", "503 Service", "^id=bob\$"]
--- response_headers eval
["X-Status: MISS", "", "X-Status: DENIED", "X-Status: ERROR", "X-Status: MISS"]


=== TEST 2: a 302 to the login page ends the stale entry
--- request eval
["GET /api/x", "GET /sleep1", "GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "", "Cookie: session=s1\nX-Mode: login", "Cookie: session=s1\nX-Mode: fail"]
--- error_code eval
[200, 200, 302, 503]
--- response_headers eval
["X-Status: MISS", "", "X-Status: DENIED", "X-Status: ERROR"]


=== TEST 3: a 404 ends the stale entry
--- request eval
["GET /api/x", "GET /sleep1", "GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "", "Cookie: session=s1\nX-Mode: gone", "Cookie: session=s1\nX-Mode: fail"]
--- error_code eval
[200, 200, 404, 503]
--- response_body_like eval
["^id=alice\$", "slept", "no such session", "503 Service"]


=== TEST 4: a 401 with Cache-Control no-store ends the stale entry, though 401 has a rule
--- api
    identity_cache_valid 401 60s;
--- request eval
["GET /api/x", "GET /sleep1", "GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "", "Cookie: session=s1\nX-Mode: deny-nostore", "Cookie: session=s1\nX-Mode: fail"]
--- error_code eval
[200, 200, 401, 503]
--- response_headers eval
["X-Status: MISS", "", "X-Status: DENIED", "X-Status: ERROR"]


=== TEST 5: with identity_anonymous on, a refusal passed on without identity still ends the stale entry
--- api
    identity_anonymous on;
--- request eval
["GET /api/x", "GET /sleep1", "GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "", "Cookie: session=s1\nX-Mode: deny", "Cookie: session=s1\nX-Mode: fail"]
--- error_code eval
[200, 200, 200, 503]
--- response_body_like eval
["^id=alice\$", "slept", "^id=\$", "503 Service"]
--- response_headers eval
["X-Status: MISS", "", "X-Status: DENIED", "X-Status: ERROR"]


=== TEST 6: a 200 with no-store is the last answer too: the older identity is not served stale
--- request eval
["GET /api/x", "GET /sleep1", "GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "", "Cookie: session=s1\nX-Mode: nostore", "Cookie: session=s1\nX-Mode: fail"]
--- error_code eval
[200, 200, 200, 503]
--- response_body_like eval
["^id=alice\$", "slept", "^id=nostore\$", "503 Service"]


=== TEST 7: with identity_on_error pass, the failure after a refusal passes without the old identity
--- api
    identity_on_error pass;
--- request eval
["GET /api/x", "GET /sleep1", "GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "", "Cookie: session=s1\nX-Mode: login", "Cookie: session=s1\nX-Mode: fail"]
--- error_code eval
[200, 200, 302, 200]
--- response_body_like eval
["^id=alice\$", "slept", ".*", "^id=\$"]
--- response_headers eval
["X-Status: MISS", "", "X-Status: DENIED", "X-Status: ERROR"]
