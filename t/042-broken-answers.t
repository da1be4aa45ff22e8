# Attacks by a user service that breaks its answer: a body cut short, a chunked body
# without its last chunk, a reset mid-body, a read timeout after the headers. Each starts
# like a good answer ({"id":...}, status 200); none may count as one: the request takes
# the identity_on_error path, and nothing is cached (the next request calls again).
# t/lib/bad_user_service.py misbehaves as the X-Mode header's path says.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity ();

# A free port for the mock (bound, read, released), then the mock, detached, which
# exits with this test process; the test goes on once it accepts connections.
use IO::Socket::INET;
my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1)
    or die "no free port: $!";
my $mock_port = $probe->sockport;
close $probe;
system("python3 t/lib/bad_user_service.py $mock_port $$ </dev/null >/dev/null 2>&1 &") == 0
    or die "cannot start t/lib/bad_user_service.py";
for (1 .. 100) {
    last if IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mock_port);
    select(undef, undef, undef, 0.05);
}

our $Config = <<'_EOC_';
    location = /_identity {
        internal;
        proxy_read_timeout 500ms;
        proxy_pass http://127.0.0.1:MOCK_PORT/$http_x_mode;
    }
    location /api/ {
        identity_request /_identity;
        identity_header X-User $identity;
        add_header X-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /cached/ {
        identity_request /_identity;
        identity_cache users;
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
    $block->set_value("http_config", "    identity_cache_zone users:1m;\n");
    (my $config = $Config . ($block->config // "")) =~ s/MOCK_PORT/$mock_port/g;
    $block->set_value("config", $config);
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a whole answer is accepted (the mock's control case)
--- more_headers
Cookie: session=s1
X-Mode: complete/alice
--- request
GET /api/x
--- response_body
user=[{"id":"alice"}]
--- response_headers
X-Status: OK



=== TEST 2: a body cut short (Content-Length larger than what is sent, then close) is no answer
--- more_headers
Cookie: session=s1
X-Mode: short/alice
--- request
GET /api/x
--- error_code: 503
--- response_headers
X-Status: ERROR
--- error_log
ended before its last byte



=== TEST 3: a chunked body without its last chunk is no answer
--- more_headers
Cookie: session=s1
X-Mode: chunked/alice
--- request
GET /api/x
--- error_code: 503
--- response_headers
X-Status: ERROR
--- error_log
ended before its last byte



=== TEST 4: a connection reset mid-body is no answer
--- more_headers
Cookie: session=s1
X-Mode: reset/alice
--- request
GET /api/x
--- error_code: 503
--- response_headers
X-Status: ERROR
--- error_log
ended before its last byte



=== TEST 5: a read timeout after the headers is no answer
--- more_headers
Cookie: session=s1
X-Mode: stall/alice
--- request
GET /api/x
--- error_code: 503
--- response_headers
X-Status: ERROR
--- error_log
upstream timed out



=== TEST 6: identity_on_error pass: a truncated answer passes without identity
--- config
    location /lenient/ {
        identity_request /_identity;
        identity_on_error pass;
        identity_header X-User $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- more_headers
Cookie: session=s1
X-Mode: short/alice
--- request
GET /lenient/x
--- response_body
user=[]



=== TEST 7: with a cache, a body cut short is never stored: the next request calls again
--- request eval
["GET /cached/x", "GET /cached/x"]
--- more_headers eval
["Cookie: session=c1\nX-Mode: short/alice", "Cookie: session=c1\nX-Mode: complete/bob"]
--- error_code eval
[503, 200]
--- response_body_like eval
[".*", qr/^user=\[\{"id":"bob"\}\]$/]



=== TEST 8: with a cache, a chunked body without its last chunk is never stored
--- request eval
["GET /cached/x", "GET /cached/x"]
--- more_headers eval
["Cookie: session=c2\nX-Mode: chunked/alice", "Cookie: session=c2\nX-Mode: complete/bob"]
--- error_code eval
[503, 200]
--- response_body_like eval
[".*", qr/^user=\[\{"id":"bob"\}\]$/]



=== TEST 9: with a cache, a reset mid-body is never stored
--- request eval
["GET /cached/x", "GET /cached/x"]
--- more_headers eval
["Cookie: session=c3\nX-Mode: reset/alice", "Cookie: session=c3\nX-Mode: complete/bob"]
--- error_code eval
[503, 200]
--- response_body_like eval
[".*", qr/^user=\[\{"id":"bob"\}\]$/]



=== TEST 10: with a cache, a read timeout after the headers is never stored
--- request eval
["GET /cached/x", "GET /cached/x"]
--- more_headers eval
["Cookie: session=c4\nX-Mode: stall/alice", "Cookie: session=c4\nX-Mode: complete/bob"]
--- error_code eval
[503, 200]
--- response_body_like eval
[".*", qr/^user=\[\{"id":"bob"\}\]$/]
