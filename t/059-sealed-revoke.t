# identity_sealed_revoke: a sealed cookie revoked on this gateway is refused until its
# exp (the fleet's side, through Redis, is t/rust/fleet.rs). Cookies from
# t/sealed-vectors.json, as in t/030-sealed.t.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity ();  # the business service in a server of its own
use File::Temp qw(tempdir);

my $dir = tempdir(CLEANUP => 1);
my $ring = <<'_EOK_';
2026-11 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
k1 QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=
_EOK_
open my $fh, '>', "$dir/identity.keys" or die $!;
print $fh $ring;
close $fh;
chmod 0600, "$dir/identity.keys";
$ENV{TEST_NGINX_SEALED_KEYS} = "$dir/identity.keys";

# alice (vector "basic", key 2026-11) and bob (vector "claims", key k1), both valid to 2100.
$ENV{TEST_NGINX_ALICE} = 'AQcyMDI2LTExAAECAwQFBgcICQoLUNgaGLeComWvrWEKW3ktKap1G1UlmYGMw7QUatefaVTqpzEhsp-2Z2F-yPhsX390';
$ENV{TEST_NGINX_BOB} = 'AQJrMcr-ur76ztut3sr4iBOLF6t8QBeZR2dOhO3imQhpB4AnwvH2J2MjTdlshmJ2plDF76_HutySwK4Rza6IfGxz8uqEeoI09mvv0wLrKGVXPe6kphwAIb5GMG5HBHFr5_Y25PDqdhViL-ZhwacqvOuo4tsfI4zz';

our $HttpConfig = <<'_EOC_';
    identity_sealed_keys $TEST_NGINX_SEALED_KEYS;
    identity_cache_zone users:1m;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        location /user { return 401; }
    }
_EOC_

our $Config = <<'_EOC_';
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_3/user; }
    location /api/ {
        identity_sealed session;
        identity_header X-User-Id $identity_claim_sub;
        add_header X-Reason "[$identity_reason]" always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /logout { identity_sealed_revoke session; }
    location = /logout-other-name { identity_sealed_revoke sid; }
    location /fallback/ {
        identity_sealed session;
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_sub;
        add_header X-Reason "[$identity_reason]" always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        return 200 "id=$http_x_user_id\n";
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a revoked sealed cookie is refused from then on, with reason "revoked"
--- request eval
["GET /api/x", "POST /logout", "GET /api/x", "GET /api/y"]
--- more_headers eval
"Cookie: session=$ENV{TEST_NGINX_ALICE}"
--- error_code eval
[200, 204, 401, 401]
--- response_headers_like eval
["X-Reason: \\[\\]", "", "X-Reason: \\[revoked\\]", "X-Reason: \\[revoked\\]"]
--- no_error_log
[error]


=== TEST 2: revoking one cookie leaves another user's cookie open
--- request eval
["POST /logout", "GET /api/x"]
--- more_headers eval
["Cookie: session=$ENV{TEST_NGINX_ALICE}", "Cookie: session=$ENV{TEST_NGINX_BOB}"]
--- error_code eval
[204, 200]
--- response_body eval
["", "id=bob\n"]


=== TEST 3: only POST and DELETE revoke; a GET changes nothing
--- request eval
["GET /logout", "GET /api/x"]
--- more_headers eval
"Cookie: session=$ENV{TEST_NGINX_BOB}"
--- error_code eval
[405, 200]


=== TEST 4: no cookie, or one that does not open, is not revoked: 404
--- request eval
["POST /logout", "POST /logout"]
--- more_headers eval
["", "Cookie: session=$ENV{TEST_NGINX_BOB}x"]
--- error_code eval
[404, 404]


=== TEST 5: the cookie is opened with the location's identity_sealed name: another name is not revoked
--- request eval
["POST /logout-other-name", "GET /api/x"]
--- more_headers eval
"Cookie: session=$ENV{TEST_NGINX_BOB}"
--- error_code eval
[404, 200]


=== TEST 6: with an identity_request fallback, a revoked cookie goes to the user service, which judges it
--- request eval
["POST /logout", "GET /fallback/x"]
--- more_headers eval
"Cookie: session=$ENV{TEST_NGINX_BOB}"
--- error_code eval
[204, 401]


=== TEST 7: identity_sealed_revoke needs the cookie's name
--- config
    location = /logout { identity_sealed_revoke; }
--- must_die
--- error_log
invalid number of arguments in "identity_sealed_revoke" directive


=== TEST 8: identity_sealed_revoke without identity_sealed_keys: nginx -t says so
--- http_config
--- config
    location = /logout { identity_sealed_revoke session; }
--- must_die
--- error_log eval
qr/"identity_sealed_revoke" \(at .*nginx.conf:\d+\) needs "identity_sealed_keys"/
