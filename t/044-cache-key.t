# What a cache entry is keyed by: an entry answers one user-service question (the
# identity_request URI) for one credential, and, when the user service says Vary, for the
# values of those request headers. A cached answer must never be used for a question it
# did not answer. The mock user service answers from X-Mode; /shop allows everyone,
# /admin refuses bob.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
# The backend in a server of its own: the gateway's server strips the identity names.
use Identity ();

our $HttpConfig = <<'_EOC_';
    identity_cache_zone users:1m;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        location /shop {
            return 200 '{"id":"$http_x_mode"}';
        }
        location /admin {
            if ($http_x_mode = "bob") { return 403 "not an admin\n"; }
            return 200 '{"id":"$http_x_mode"}';
        }
        location /lang {
            if ($http_x_mode = "fail") { return 502; }
            add_header Vary "Accept-Language";
            return 200 '{"id":"$http_x_mode-$http_accept_language"}';
        }
        location /lang2 {
            add_header Vary "accept-language, X-Tenant";
            return 200 '{"id":"$http_x_mode-$http_accept_language-$http_x_tenant"}';
        }
        location /star {
            add_header Vary "*";
            return 200 '{"id":"$http_x_mode"}';
        }
    }
_EOC_

our $Config = <<'_EOC_';
    location = /_shop {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/shop;
    }
    location = /_admin {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/admin;
    }
    location = /_lang {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/lang;
    }
    location = /_lang2 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/lang2;
    }
    location = /_star {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/star;
    }
    location = /_identity {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/shop;
    }
    location = /sleep1 { echo_sleep 1.2; echo slept; }
    location /backend {
        return 200 "id=$http_x_user_id\n";
    }
_EOC_

# A protected location per user-service question, all on one zone. A block's
# `--- extra_http` adds servers, `--- extra_config` locations.
sub protected {
    my ($prefix, $uri, $extra) = @_;
    return "    location /$prefix/ {\n"
         . "        identity_request $uri;\n"
         . "        identity_cache users;\n"
         . ($extra // "")
         . "        identity_header X-User-Id \$identity_claim_id;\n"
         . "        add_header X-Status \$identity_status always;\n"
         . "        proxy_pass http://127.0.0.1:\$server_port/backend;\n"
         . "    }\n";
}

our $Locations = protected("shop", "/_shop") . protected("same", "/_identity") . protected("admin", "/_admin")
    . protected("lang", "/_lang") . protected("lang2", "/_lang2") . protected("star", "/_star")
    . protected("stale", "/_lang",
                "        identity_cache_valid 200 1s;\n        identity_cache_use_stale 30s;\n");

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig . ($block->extra_http // ""))
        unless defined $block->http_config;
    $block->set_value("config", $Config . $Locations . ($block->extra_config // ""));
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: bob's answer from the shop's user service does not open admin
--- request eval
["GET /shop/x", "GET /admin/x", "GET /admin/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: bob", "Cookie: session=s1\nX-Mode: bob", "Cookie: session=s1\nX-Mode: bob"]
--- error_code eval
[200, 403, 403]
--- response_body eval
["id=bob\n", "not an admin\n", "not an admin\n"]
--- response_headers eval
["X-Status: MISS", "X-Status: DENIED", "X-Status: DENIED"]


=== TEST 2: two questions through one zone are cached apart, each hit by its own
--- request eval
["GET /shop/x", "GET /admin/x", "GET /shop/x", "GET /admin/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "Cookie: session=s1\nX-Mode: carol", "Cookie: session=s1\nX-Mode: dave", "Cookie: session=s1\nX-Mode: erin"]
--- response_body eval
["id=alice\n", "id=carol\n", "id=alice\n", "id=carol\n"]
--- response_headers eval
["X-Status: MISS", "X-Status: MISS", "X-Status: HIT", "X-Status: HIT"]


=== TEST 3: a purge removes the credential's entries for every question asked through the zone
--- extra_config
    location = /purge {
        identity_cache_purge users;
    }
--- request eval
["GET /shop/x", "GET /admin/x", "DELETE /purge", "GET /shop/x", "GET /admin/x", "DELETE /purge", "DELETE /purge"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "Cookie: session=s1\nX-Mode: alice", "Cookie: session=s1", "Cookie: session=s1\nX-Mode: bob", "Cookie: session=s1\nX-Mode: bob", "Cookie: session=s1", "Cookie: session=s1"]
--- error_code eval
[200, 200, 204, 200, 403, 204, 404]
--- response_headers eval
["X-Status: MISS", "X-Status: MISS", "", "X-Status: MISS", "X-Status: DENIED", "", ""]


=== TEST 4: the same identity_request URI in another server{} is another question
--- extra_http
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        server_name admin.test;
        location = /_identity {
            internal;
            proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/admin;
        }
        location /same/ {
            identity_request /_identity;
            identity_cache users;
            add_header X-Status $identity_status always;
            echo admin;
        }
        location = /purge {
            identity_cache_purge users;
        }
    }
--- extra_config
    location /admin-server/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_3/;
    }
--- request eval
["GET /same/x", "GET /admin-server/same/x", "GET /same/x", "DELETE /admin-server/purge", "GET /same/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: bob", "Cookie: session=s1\nX-Mode: bob", "Cookie: session=s1\nX-Mode: carol", "Cookie: session=s1", "Cookie: session=s1\nX-Mode: dave"]
--- error_code eval
[200, 403, 200, 204, 200]
--- response_body eval
["id=bob\n", "not an admin\n", "id=bob\n", "", "id=dave\n"]
--- response_headers eval
["X-Status: MISS", "X-Status: DENIED", "X-Status: HIT", "", "X-Status: MISS"]


=== TEST 5: Vary: Accept-Language keeps one answer per language; another language asks again and replaces it
--- request eval
["GET /lang/x", "GET /lang/x", "GET /lang/x", "GET /lang/x"]
--- more_headers eval
["Cookie: session=s1\nAccept-Language: en\nX-Mode: alice", "Cookie: session=s1\nAccept-Language: fr\nX-Mode: bob", "Cookie: session=s1\nAccept-Language: fr\nX-Mode: carol", "Cookie: session=s1\nAccept-Language: en\nX-Mode: dave"]
--- response_body eval
["id=alice-en\n", "id=bob-fr\n", "id=bob-fr\n", "id=dave-en\n"]
--- response_headers eval
["X-Status: MISS", "X-Status: MISS", "X-Status: HIT", "X-Status: MISS"]


=== TEST 6: several Vary names, in any case; a header that is absent is a value of its own
--- request eval
["GET /lang2/x", "GET /lang2/x", "GET /lang2/x", "GET /lang2/x", "GET /lang2/x"]
--- more_headers eval
["Cookie: session=s1\nAccept-Language: en\nX-Tenant: t1\nX-Mode: alice", "Cookie: session=s1\nAccept-Language: en\nX-Tenant: t2\nX-Mode: bob", "Cookie: session=s1\nX-Tenant: t2\nAccept-Language: en\nX-Mode: carol", "Cookie: session=s1\nAccept-Language: en\nX-Mode: dave", "Cookie: session=s1\nAccept-Language: en\nX-Mode: erin"]
--- response_body eval
["id=alice-en-t1\n", "id=bob-en-t2\n", "id=bob-en-t2\n", "id=dave-en-\n", "id=dave-en-\n"]
--- response_headers eval
["X-Status: MISS", "X-Status: MISS", "X-Status: HIT", "X-Status: MISS", "X-Status: HIT"]


=== TEST 7: Vary: * is never cached
--- request eval
["GET /star/x", "GET /star/x"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: alice", "Cookie: session=s1\nX-Mode: bob"]
--- response_body eval
["id=alice\n", "id=bob\n"]
--- response_headers eval
["X-Status: MISS", "X-Status: MISS"]


=== TEST 8: a stale answer is only served to a request with the values it varied on
--- request eval
["GET /stale/x", "GET /sleep1", "GET /stale/x", "GET /stale/x"]
--- more_headers eval
["Cookie: session=s1\nAccept-Language: en\nX-Mode: alice", "", "Cookie: session=s1\nAccept-Language: fr\nX-Mode: fail", "Cookie: session=s1\nAccept-Language: en\nX-Mode: fail"]
--- error_code eval
[200, 200, 503, 200]
--- response_body_like eval
["^id=alice-en\$", "slept", "503 Service", "^id=alice-en\$"]
--- response_headers eval
["X-Status: MISS", "", "X-Status: ERROR", "X-Status: STALE"]
