# Attacks tried after the fixes of issue 9, one block each, named for the attack: the
# paths a request can take through nginx, the headers nginx treats specially, a user
# service that misbehaves, and the cache under races. Each block asserts what must hold.
# t/lib/attack_user_service.py is a user service that acts while nginx waits for it (the
# first segment of the main request's URI picks what it does).
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity ();

use IO::Socket::INET;
my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1)
    or die "no free port: $!";
my $mock_port = $probe->sockport;
close $probe;
system("python3 t/lib/attack_user_service.py $mock_port $$ </dev/null >/dev/null 2>&1 &") == 0
    or die "cannot start t/lib/attack_user_service.py";
for (1 .. 100) {
    last if IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mock_port);
    select(undef, undef, undef, 0.05);
}

our $Config = <<'_EOC_';
    location = /_identity {
        internal;
        proxy_set_header X-Gateway-Port $server_port;
        proxy_pass http://127.0.0.1:MOCK_PORT$request_uri;
    }
    location = /purge { identity_cache_purge users; }
    location /api/ {
        identity_request /_identity;
        identity_header X-User $identity;
        add_header X-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        return 200 "user=[$http_x_user]\n";
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", "    identity_cache_zone users:1m;\n" . ($block->http_config // ""));
    (my $config = $Config . ($block->config // "")) =~ s/MOCK_PORT/$mock_port/g;
    $block->set_value("config", $config);
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: logout during the call: a purge while the session's call is in flight is not undone by the call's answer
--- config
    location /purge-race/ {
        identity_request /_identity;
        identity_cache users;
        identity_header X-User $identity;
        add_header X-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /refuse/ {
        identity_request /_identity;
        identity_cache users;
        identity_header X-User $identity;
        add_header X-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- more_headers
Cookie: session=s1
--- request eval
["GET /purge-race/alice", "GET /refuse/alice"]
--- error_code eval
[200, 401]
--- response_body_like eval
['^user=\[\{"id":"alice"\}\]$', '401 Authorization Required']
--- response_headers eval
["X-Status: MISS", "X-Status: DENIED"]



=== TEST 2: an older call's answer arriving after a newer refusal does not bring the session back (identity_cache_lock off)
--- config
    location ~ ^/(race|refuse)/ {
        identity_request /_identity;
        identity_cache users;
        identity_cache_lock off;
        identity_header X-User $identity;
        add_header X-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- more_headers
Cookie: session=s2
--- request eval
["GET /race/alice", "GET /refuse/alice"]
--- error_code eval
[200, 401]
--- response_body_like eval
['^user=\[\{"id":"alice"\}\]$', '401 Authorization Required']
--- response_headers eval
["X-Status: MISS", "X-Status: DENIED"]



=== TEST 3: the same race when the refusal may not be cached (no identity_cache_valid rule for 401)
--- config
    location ~ ^/(race|refuse)/ {
        identity_request /_identity;
        identity_cache users;
        identity_cache_lock off;
        identity_cache_valid 200 60s;
        identity_header X-User $identity;
        add_header X-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- more_headers
Cookie: session=s3
--- request eval
["GET /race/alice", "GET /refuse/alice"]
--- error_code eval
[200, 401]
--- response_body_like eval
['^user=\[\{"id":"alice"\}\]$', '401 Authorization Required']
--- response_headers eval
["X-Status: MISS", "X-Status: DENIED"]
