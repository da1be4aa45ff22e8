# identity_cache_sync and identity_sealed_revoke under attack, on one gateway (the
# multi-gateway cases are in t/rust/fleet.rs). The blocks run in order on one nginx,
# reloaded (HUP) between them, so the revocation table's shared memory carries over.
use Test::Nginx::Socket 'no_plan';
use File::Temp qw(tempdir);

my $dir = tempdir(CLEANUP => 1);
open my $fh, '>', "$dir/identity.keys" or die $!;
print $fh "2026-11 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
close $fh;
chmod 0600, "$dir/identity.keys";
$ENV{TEST_NGINX_SEALED_KEYS} = "$dir/identity.keys";
open $fh, '>', "$dir/fleet.key" or die $!;
print $fh "0123456789abcdef0123456789abcdef-fleet";
close $fh;
chmod 0600, "$dir/fleet.key";
$ENV{TEST_NGINX_FLEET_KEY} = "$dir/fleet.key";

# alice (t/sealed-vectors.json "basic", key 2026-11), valid to 2100.
$ENV{TEST_NGINX_ALICE} = 'AQcyMDI2LTExAAECAwQFBgcICQoLUNgaGLeComWvrWEKW3ktKap1G1UlmYGMw7QUatefaVTqpzEhsp-2Z2F-yPhsX390';

our $Public = <<'_EOC_';
    identity_sealed_keys $TEST_NGINX_SEALED_KEYS;
    identity_cache_zone users:1m;
_EOC_

# Redis is never reachable here: the link stays down, which changes nothing below.
our $Keyed = $Public . <<'_EOC_';
    identity_cache_sync users redis://127.0.0.1:9 secret=$TEST_NGINX_FLEET_KEY;
_EOC_

our $Config = <<'_EOC_';
    location /api/ {
        identity_sealed session;
        add_header X-Reason "[$identity_reason]" always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /logout { identity_sealed_revoke session; }
    location /backend { return 200 "ok\n"; }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("config", $Config) unless defined $block->config;
});

use_hup();
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a gateway without secret= revokes alice's sealed cookie
--- http_config eval: $::Public
--- request eval
["POST /logout", "GET /api/"]
--- more_headers eval
"Cookie: session=$ENV{TEST_NGINX_ALICE}"
--- error_code eval
[204, 401]
--- response_headers_like eval
["", "X-Reason: \\[revoked\\]"]



=== TEST 2: a reload that adds identity_cache_sync with secret= (another digest key) keeps the revocation in force
--- http_config eval: $::Keyed
--- request
GET /api/
--- more_headers eval
"Cookie: session=$ENV{TEST_NGINX_ALICE}"
--- error_code: 401
--- response_headers
X-Reason: [revoked]



=== TEST 3: a second reload with the same secret= still refuses it
--- http_config eval: $::Keyed
--- request
GET /api/
--- more_headers eval
"Cookie: session=$ENV{TEST_NGINX_ALICE}"
--- error_code: 401
--- response_headers
X-Reason: [revoked]



=== TEST 4: back to no secret=: still refused
--- http_config eval: $::Public
--- request
GET /api/
--- more_headers eval
"Cookie: session=$ENV{TEST_NGINX_ALICE}"
--- error_code: 401
--- response_headers
X-Reason: [revoked]
