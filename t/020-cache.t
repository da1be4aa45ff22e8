# The shared-memory cache. The client picks the mock user service's answer with an
# X-Mode header while the cache key is the session cookie, so a cached answer shows up
# as the old answer coming back after the user service changed its mind.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity ();  # the business service in a server of its own

our $HttpConfig = <<'_EOC_';
    identity_cache_zone users:1m;
    identity_cache_zone others:1m;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        location /user {
            if ($http_x_mode = "deny") { return 401 "denied\n"; }
            if ($http_x_mode = "fail") { return 500; }
            if ($http_x_mode = "nostore") {
                add_header Cache-Control "private, no-store";
                return 200 '{"id":"nostore"}';
            }
            if ($http_x_mode = "short") {
                add_header Cache-Control "max-age=1";
                return 200 '{"id":"short"}';
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
    location = /sleep2 { echo_sleep 2.2; echo slept; }
    location /backend {
        return 200 "id=$http_x_user_id\n";
    }
_EOC_

# A block's `--- api` lines go into the protected location every test uses; blocks that
# need other locations give them in `--- extra_config`.
add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    my $api = "";
    if (defined $block->api) {
        $api = "    location /api/ {\n"
             . "        identity_request /_identity;\n"
             . join("", map { "    $_\n" } grep { /\S/ } split /\n/, $block->api)
             . "        identity_header X-User-Id \$identity_claim_id;\n"
             . "        add_header X-Status \$identity_status always;\n"
             . "        proxy_pass http://127.0.0.1:\$server_port/backend;\n"
             . "    }\n";
    }
    $block->set_value("config", $Config . $api . ($block->extra_config // ""));
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a miss fills the cache, later requests are hits without a call
--- api
    identity_cache users;
--- request eval
["GET /api/x", "GET /api/x", "GET /api/y"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "Cookie: session=s1\nX-Mode: bob", "Cookie: session=s1\nX-Mode: carol"]
--- response_body eval
["id=alice\n", "id=alice\n", "id=alice\n"]
--- response_headers eval
["X-Status: MISS", "X-Status: HIT", "X-Status: HIT"]
--- no_error_log
[error]


=== TEST 2: different credentials are different entries
--- api
    identity_cache users;
--- request eval
["GET /api/x", "GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "Cookie: session=s2\nX-Mode: bob", "Cookie: session=s1\nX-Mode: carol"]
--- response_body eval
["id=alice\n", "id=bob\n", "id=alice\n"]


=== TEST 3: an entry expires after identity_cache_valid
--- api
    identity_cache users;
    identity_cache_valid 200 1s;
--- request eval
["GET /api/x", "GET /sleep1", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "", "Cookie: session=s1\nX-Mode: bob"]
--- response_body eval
["id=alice\n", "slept\n", "id=bob\n"]
--- response_headers eval
["X-Status: MISS", "", "X-Status: MISS"]


=== TEST 4: refusals are cached too (negative caching, 401 for 5s by default)
--- api
    identity_cache users;
--- request eval
["GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: deny", "Cookie: session=s1\nX-Mode: alice"]
--- error_code eval
[401, 401]
--- response_body eval
["denied\n", "denied\n"]


=== TEST 5: identity_cache_valid decides which statuses are kept
--- api
    identity_cache users;
    identity_cache_valid 200 60s;
--- request eval
["GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: deny", "Cookie: session=s1\nX-Mode: alice"]
--- error_code eval
[401, 200]
--- response_body eval
["denied\n", "id=alice\n"]


=== TEST 6: a 5xx is never cached
--- api
    identity_cache users;
    identity_cache_valid any 60s;
--- request eval
["GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: fail", "Cookie: session=s1\nX-Mode: alice"]
--- error_code eval
[503, 200]
--- response_body_like eval
[qr/503 Service/, qr/^id=alice$/]


=== TEST 7: a stale identity is served while the user service fails, within the window
--- api
    identity_cache users;
    identity_cache_valid 200 1s;
    identity_cache_use_stale 30s;
--- request eval
["GET /api/x", "GET /sleep1", "GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "", "Cookie: session=s1\nX-Mode: fail", "Cookie: session=s1\nX-Mode: bob"]
--- response_body eval
["id=alice\n", "slept\n", "id=alice\n", "id=bob\n"]
--- response_headers eval
["X-Status: MISS", "", "X-Status: STALE", "X-Status: MISS"]


=== TEST 8: a stale identity is not served once its window has passed
--- api
    identity_cache users;
    identity_cache_valid 200 1s;
    identity_cache_use_stale 1s;
--- request eval
["GET /api/x", "GET /sleep2", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "", "Cookie: session=s1\nX-Mode: fail"]
--- error_code eval
[200, 200, 503]


=== TEST 9: without identity_cache_use_stale an expired entry is not served on failure
--- api
    identity_cache users;
    identity_cache_valid 200 1s;
--- request eval
["GET /api/x", "GET /sleep1", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "", "Cookie: session=s1\nX-Mode: fail"]
--- error_code eval
[200, 200, 503]


=== TEST 10: Cache-Control no-store from the user service prevents caching
--- api
    identity_cache users;
--- request eval
["GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: nostore", "Cookie: session=s1\nX-Mode: bob"]
--- response_body eval
["id=nostore\n", "id=bob\n"]


=== TEST 11: Cache-Control max-age lowers identity_cache_valid
--- api
    identity_cache users;
    identity_cache_valid 200 60s;
--- request eval
["GET /api/x", "GET /api/x", "GET /sleep1", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: short", "Cookie: session=s1\nX-Mode: bob", "", "Cookie: session=s1\nX-Mode: bob"]
--- response_body eval
["id=short\n", "id=short\n", "slept\n", "id=bob\n"]


=== TEST 12: purge removes the entry of the credential it is sent with
--- api
    identity_cache users;
--- extra_config
    location = /purge {
        identity_cache_purge users;
    }
--- request eval
["GET /api/x", "DELETE /purge", "DELETE /purge", "GET /api/x", "POST /purge\r\nContent-Length: 0\r\n\r\n", "GET /purge"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "Cookie: session=s1", "Cookie: session=s1", "Cookie: session=s1\nX-Mode: bob", "Cookie: session=s1", "Cookie: session=s1"]
--- error_code eval
[200, 204, 404, 200, 204, 405]
--- response_body_like eval
["^id=alice\$", "^\$", "404 Not Found", "^id=bob\$", "^\$", "405 Not Allowed"]


=== TEST 13: two zones are separate caches
--- extra_config
    location /a/ {
        identity_request /_identity;
        identity_cache users;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /b/ {
        identity_request /_identity;
        identity_cache others;
        identity_header X-User-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request eval
["GET /a/x", "GET /b/x", "GET /a/x", "GET /b/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "Cookie: session=s1\nX-Mode: bob", "Cookie: session=s1\nX-Mode: carol", "Cookie: session=s1\nX-Mode: carol"]
--- response_body eval
["id=alice\n", "id=bob\n", "id=alice\n", "id=bob\n"]


=== TEST 14: a key that names the route caches two routes' decisions apart
--- api
    identity_key $cookie_session$uri;
    identity_cache users;
--- request eval
["GET /api/one", "GET /api/two", "GET /api/one", "GET /api/two"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "Cookie: session=s1\nX-Mode: deny", "Cookie: session=s1\nX-Mode: deny", "Cookie: session=s1\nX-Mode: alice"]
--- error_code eval
[200, 401, 200, 401]


=== TEST 15: identity_cache off in a location turns an inherited cache off
--- extra_config
    identity_cache users;
    location /api/ {
        identity_request /_identity;
        identity_cache off;
        identity_header X-User-Id $identity_claim_id;
        add_header X-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request eval
["GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "Cookie: session=s1\nX-Mode: bob"]
--- response_body eval
["id=alice\n", "id=bob\n"]
--- response_headers eval
["X-Status: OK", "X-Status: OK"]


=== TEST 16: a zone that is used but never defined stops nginx
--- http_config
--- api
    identity_cache nosuchzone;
--- request
GET /api/x
--- must_die
--- error_log
zero size shared memory zone "nosuchzone"


=== TEST 17: identity_cache_valid refuses 5xx
--- api
    identity_cache users;
    identity_cache_valid 502 10s;
--- request
GET /api/x
--- must_die
--- error_log
"identity_cache_valid" invalid value "502"


=== TEST 18: identity_cache_zone needs name:size
--- http_config
    identity_cache_zone users;
--- extra_config
--- request
GET /api/x
--- must_die
--- error_log
"identity_cache_zone" invalid value "users": it must be name:size
