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
_EOC_

# The business service, unless the block has its own.
our $Backend = <<'_EOC_';
    location /backend {
        return 200 "user=[$http_x_user]\n";
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    # Test::Nginx writes "http2 on;" from nginx 1.19.9 on, but nginx has it only since
    # 1.25.1: before that, "listen ... http2".
    if (defined $block->http2 && $Test::Nginx::Util::NginxVersion < 1.025001) {
        $Test::Nginx::Util::NginxVersion = 1.019008;
    }
    $block->set_value("http_config", "    identity_cache_zone users:1m;\n" . ($block->http_config // ""));
    my $own = $block->config // "";
    my $backend = $own =~ m{location /backend\b} ? "" : $Backend;
    (my $config = $Config . $backend . $own) =~ s/MOCK_PORT/$mock_port/g;
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



=== TEST 4: request smuggling through a refusal: the body of a refused POST holding a second request is never served as one
--- config
    location /refuse/ {
        identity_request /_identity;
        identity_header X-User $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /smuggled {
        access_log logs/error.log smuggled;
        return 200 "smuggled\n";
    }
--- http_config
    log_format smuggled 'SMUGGLED REQUEST SERVED';
--- raw_request eval
my $inner = "GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
"POST /refuse/alice HTTP/1.1\r\nHost: localhost\r\nCookie: session=s4\r\nContent-Length: "
    . length($inner) . "\r\n\r\n" . $inner
    . "GET /refuse/alice HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
--- error_code: 401
--- no_error_log
SMUGGLED REQUEST SERVED



=== TEST 5: satisfy any: access granted by allow, without an identity, never carries the client's X-User
--- config
    location /any/ {
        satisfy any;
        allow 127.0.0.1;
        deny all;
        identity_request /_identity;
        identity_header X-User $identity;
        add_header X-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- more_headers
X-User: {"id":"admin"}
--- request
GET /any/x
--- response_body
user=[]



=== TEST 6: X-Accel-Redirect from an open location's upstream into a protected location: the exchange runs there
--- config
    location /open/ {
        proxy_pass http://127.0.0.1:$server_port/xa;
    }
    location = /xa {
        add_header X-Accel-Redirect /api/x;
        return 200 "not redirected\n";
    }
--- more_headers
X-User: {"id":"admin"}
--- request
GET /open/x
--- error_code: 401
--- response_headers
X-Status: ANONYMOUS



=== TEST 7: slice: every range subrequest carries the main request's verified identity, never the client's
--- skip_eval
3: system("$ENV{TEST_NGINX_BINARY} -V 2>&1 | grep -q http_slice_module") != 0
--- config
    location /slice/ {
        slice 10;
        proxy_set_header Range $slice_range;
        identity_request /_identity;
        identity_header X-User $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        access_log logs/error.log sliced;
        alias html/sliced.txt;
    }
--- http_config
    log_format sliced 'SLICE range=$http_range user=$http_x_user';
--- user_files
>>> sliced.txt
abcdefghijklmnopqrstuvwxy
--- more_headers
Cookie: session=s7
X-User: {"id":"admin"}
--- request
GET /slice/alice
--- response_body
abcdefghijklmnopqrstuvwxy
--- grep_error_log eval
qr/SLICE range=\S+ user=\S+/
--- grep_error_log_out
SLICE range=bytes=0-9 user={\x22id\x22:\x22alice\x22}
SLICE range=bytes=10-19 user={\x22id\x22:\x22alice\x22}
SLICE range=bytes=20-29 user={\x22id\x22:\x22alice\x22}



=== TEST 8: an error_page loop through protected locations (recursive_error_pages) ends in nginx's cycle check, the worker lives
--- config
    location /refuse/ {
        recursive_error_pages on;
        error_page 401 = @loop;
        identity_request /_identity;
        identity_header X-User $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location @loop {
        recursive_error_pages on;
        error_page 401 = @loop;
        identity_request /_identity;
        identity_cache users;
        identity_header X-User $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- more_headers
Cookie: session=s8
--- request
GET /refuse/x
--- error_code: 500
--- error_log
rewrite or internal redirection cycle
--- no_error_log
[alert]
[crit]



=== TEST 9: HTTP/2: the client's X-User is stripped and the session cookie sent in two cookie headers is refused
--- http2
--- more_headers
cookie: session=s9
cookie: session=s9b
X-User: {"id":"admin"}
--- request
GET /api/x
--- error_code: 400



=== TEST 10: HTTP/2: a valid session gets its identity, the client's X-User is gone
--- http2
--- more_headers
cookie: theme=dark
cookie: session=s10
X-User: {"id":"admin"}
--- request
GET /api/alice
--- response_body
user=[{"id":"alice"}]



=== TEST 11: a header credential sent twice (identity_key $http_x_api_key) is refused: the key would read one copy, the user service may read the other
--- config
    location /keyed/ {
        identity_request /_identity;
        identity_key $http_x_api_key;
        identity_cache users;
        identity_header X-User $identity;
        add_header X-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- more_headers
X-Api-Key: victim-key
X-Api-Key: attacker-key
--- request
GET /keyed/x
--- error_code: 400
--- response_headers
X-Status: DENIED
--- error_log
identity: client sent the header read by "$http_x_api_key" more than once



=== TEST 12: a user service's X-Accel-Redirect, with proxy_ignore_headers in the identity location (the documented advice), does not make another location's body the identity
--- config
    location = /_identity_noredirect {
        internal;
        proxy_ignore_headers X-Accel-Redirect;
        proxy_pass http://127.0.0.1:MOCK_PORT$request_uri;
    }
    location /xaccel/ {
        identity_request /_identity_noredirect;
        identity_header X-User $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /xaccel-target {
        return 200 '{"id":"admin"}';
    }
--- more_headers
Cookie: session=s12
--- request
GET /xaccel/alice
--- response_body
user=[{"id":"alice"}]



=== TEST 13: satisfy any: a client the allow rule admits is not refused because its stale session's refusal has a body (allow admits first: no exchange, no status)
--- config
    location /any-refuse/ {
        satisfy any;
        allow 127.0.0.1;
        deny all;
        identity_request /_identity_refusing;
        identity_header X-User $identity;
        add_header X-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /_identity_refusing {
        internal;
        return 401 "session expired\n";
    }
--- more_headers
Cookie: session=s13
X-User: {"id":"admin"}
--- request
GET /any-refuse/x
--- response_body
user=[]
--- response_headers
X-Status:
