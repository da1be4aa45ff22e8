# The origin gateway's cases (proxy_jwt.lua's behaviour, issue 15) run through
# nginx-conf/gateway.conf itself (t/lib/OriginGateway.pm), with mocks of the origin's user
# service (it checks the path, the request_uri argument and the headers it gets) and
# business service (it reports what reached it, over HTTP and WebSocket). The WebSocket
# blocks drive a real client (t/lib/ws_client.py, Python websockets) against the running
# gateway from a response body filter: the block's own request is a plain one, and its
# body is replaced by what the client printed.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use OriginGateway qw(free_port start_mock gateway_http_config);

my $user = start_mock('origin_user_service.py');
my $business = start_mock('origin_business_service.py');
our $Gateway = gateway_http_config($user, $business);
# Nothing listens on the user service's port.
our $GatewayUserDown = gateway_http_config(free_port(), $business);
# A JWT the user service issued to bob earlier (the client's own token).
our $BobJwt = `python3 t/lib/origin_user_service.py --issue bob`;
chomp $BobJwt;
die "cannot issue a JWT" unless $BobJwt =~ /^[\w-]+\.[\w-]+\.[\w-]+$/;

# ws_client.py against the gateway; its output, one item a line.
sub ws {
    my @args = @_;
    my $url = "ws://127.0.0.1:$Test::Nginx::Util::ServerPortForClient/api/business/ws";
    open(my $fh, '-|', 'python3', 't/lib/ws_client.py', $url, @args)
        or die "cannot run t/lib/ws_client.py: $!";
    my $out = do { local $/; <$fh> };
    close $fh;
    return $out // '';
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", defined $block->user_down ? $GatewayUserDown : $Gateway);
    # Test::Nginx's own server (server_name localhost) must exist; the gateway's server
    # comes first on the port, so it serves every other Host.
    $block->set_value("config", "    location = /t { return 204; }\n")
        unless defined $block->config;
    $block->set_value("more_headers", "Host: gateway\n" . ($block->more_headers // ""));
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a valid session cookie: the business service gets the user service's JWT in X-EXAMPLE-AUTHORIZATION
--- request
GET /api/business/orders?page=2
--- more_headers
Cookie: theme=dark; session=alice-session
--- error_code: 200
--- response_body_like chomp
(?m)\AGET /api/business/orders\?page=2\n.*^x-example-authorization: [\w-]+\.[\w-]+\.[\w-]+\n.*^jwt: \{"sub":"alice","via":"cookie","request_uri":"/api/business/orders\?page=2","xff":"","exp":4102444800\}\n\z
--- no_error_log
[error]



=== TEST 2: a valid Authorization token
--- request
GET /api/business/orders
--- more_headers
Authorization: Bearer bob-token
--- error_code: 200
--- response_body_like chomp
(?m)^jwt: \{"sub":"bob","via":"authorization","request_uri":"/api/business/orders",
--- no_error_log
[error]



=== TEST 3: the client's own JWT header alone (identity_pass_client_header) is a credential: the user service gets it and answers with a fresh JWT
--- request
GET /api/business/orders
--- more_headers eval
"X-EXAMPLE-AUTHORIZATION: $main::BobJwt"
--- error_code: 200
--- response_body_like chomp
(?m)^jwt: \{"sub":"bob","via":"jwt","request_uri":"/api/business/orders",
--- response_body_unlike eval
qr/\Q$main::BobJwt\E/
--- no_error_log
[error]



=== TEST 4: an invalid client JWT header is the user service's to judge: its 401 is relayed with its body
--- request
GET /api/business/orders
--- more_headers
X-EXAMPLE-AUTHORIZATION: not-a-jwt
--- error_code: 401
--- response_body chomp
{"detail": "invalid X-EXAMPLE-AUTHORIZATION"}



=== TEST 5: request_uri reaches the user service exactly: & = + % ? and UTF-8, escaped by $identity_escaped_request_uri
--- request eval
"GET /api/business/x%2Fy/\xc3\xa9?q=a+b&r=%25&s==&t=\xe2\x9c\x93&u=?&v=%20 HTTP/1.1"
--- more_headers
Cookie: session=alice-session
--- error_code: 200
--- response_body_like chomp
(?m)^jwt: \{"sub":"alice","via":"cookie","request_uri":"/api/business/x%2Fy/é\?q=a\+b&r=%25&s==&t=✓&u=\?&v=%20",
--- no_error_log
[error]



=== TEST 6: a refused session: the user service's 401 and body are relayed
--- request
GET /api/business/orders
--- more_headers
Cookie: session=mallory-session
--- error_code: 401
--- response_body chomp
{"detail": "invalid session"}



=== TEST 7: an invalid Authorization: 401 with the user service's WWW-Authenticate
--- request
GET /api/business/orders
--- more_headers
Authorization: Bearer mallory-token
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer
--- response_body chomp
{"detail": "invalid Authorization"}



=== TEST 8: an expired session: the user service's 302 is relayed with its Location
--- request
GET /api/business/orders?page=2
--- more_headers
Cookie: session=expired-session
--- error_code: 302
--- response_headers_like
Location: ^(?:http://gateway:\d+)?/login\?next=%2Fapi%2Fbusiness%2Forders%3Fpage%3D2$
--- response_body chomp
{"detail": "session expired"}



=== TEST 9: the user service down: the module closes with 503 (proxy_jwt.lua let the request through)
--- user_down
--- request
GET /api/business/orders
--- more_headers
Cookie: session=alice-session
--- error_code: 503
--- response_body_unlike
GET /api/business
--- error_log
connect() failed



=== TEST 10: no credential at all: 401 without asking the user service
--- request
GET /api/business/orders
--- error_code: 401
--- response_body_unlike
detail



=== TEST 11: forged JWT headers (look-alike spellings) never reach the business service, nor an extra one beside the user service's
--- request
GET /api/business/orders
--- more_headers
Cookie: session=alice-session
X_EXAMPLE_AUTHORIZATION: forged-1
x.example.authorization: forged-2
--- error_code: 200
--- response_body_like chomp
\AGET /api/business/orders\n(?:(?!x.example.authorization)[^\n]*\n)*x-example-authorization: [\w-]+\.[\w-]+\.[\w-]+\n(?:(?!x.example.authorization)[^\n]*\n)*jwt: \{"sub":"alice","via":"cookie"
--- response_body_unlike
forged



=== TEST 12: the user service's answer ending in a newline (a token written with print()) is the JWT header without it
--- request
GET /api/business/orders
--- more_headers
Cookie: session=carol-session
--- error_code: 200
--- response_body_like chomp
(?m)^jwt: \{"sub":"carol","via":"cookie",
--- no_error_log
[error]



=== TEST 13: WebSocket: an authenticated handshake reaches the WebSocket server with the identity and the token subprotocol; messages echo both ways
--- request
GET /api/business/orders
--- more_headers
Cookie: session=alice-session
--- response_body_filters eval
sub { main::ws("-H", "Cookie: session=alice-session", "hello", "second") }
--- response_body_like chomp
\Astatus 101\nfirst \{"path":"/api/business/ws","headers":\{.*"connection":"upgrade".*"upgrade":"websocket".*"x-example-authorization":"[\w-]+\.[\w-]+\.[\w-]+".*"sec-websocket-protocol":"v1\.token\.websocket\.example\.com,X-EXAMPLE-AUTHORIZATION\.[\w-]+\.[\w-]+\.[\w-]+".*\},"jwt":\{"sub":"alice","via":"cookie","request_uri":"/api/business/ws",.*\},"subprotocol_jwt":\{"sub":"alice","via":"cookie",.*\}\}\necho: hello\necho: second\n\z
--- no_error_log
[error]



=== TEST 14: WebSocket: an unauthenticated handshake is refused with the user service's status and body
--- request
GET /api/business/orders
--- more_headers
Cookie: session=alice-session
--- response_body_filters eval
sub { main::ws("-H", "Cookie: session=mallory-session", "hello") }
--- response_body
status 401
{"detail": "invalid session"}



=== TEST 15: WebSocket: a client's own token subprotocol is no credential (proxy_jwt.lua skipped the exchange for it): refused
--- request
GET /api/business/orders
--- more_headers
Cookie: session=alice-session
--- response_body_filters eval
sub { main::ws("-p", "v1.token.websocket.example.com", "-p", "X-EXAMPLE-AUTHORIZATION.$main::BobJwt", "hello") }
--- response_body_like chomp
\Astatus 401\n



=== TEST 16: WebSocket: beside a valid session, a client-chosen subprotocol never reaches the server; the gateway's token does
--- request
GET /api/business/orders
--- more_headers
Cookie: session=alice-session
--- response_body_filters eval
sub { main::ws("-H", "Cookie: session=alice-session", "-p", "v1.token.websocket.example.com", "-p", "X-EXAMPLE-AUTHORIZATION.$main::BobJwt", "hello") }
--- response_body_like chomp
\Astatus 101\nfirst .*"sec-websocket-protocol":"v1\.token\.websocket\.example\.com,X-EXAMPLE-AUTHORIZATION\.[\w-]+\.[\w-]+\.[\w-]+".*"subprotocol_jwt":\{"sub":"alice","via":"cookie",.*\necho: hello\n\z
--- response_body_unlike eval
qr/\Q$main::BobJwt\E|"sub":"bob"/



=== TEST 17: location /api/user (the user service itself, no identity_request) no longer gets the client's X-EXAMPLE-AUTHORIZATION: a protected name is removed server-wide (README, Migrating)
--- request
GET /api/user/token?request_uri=/x
--- more_headers eval
"X-EXAMPLE-AUTHORIZATION: $main::BobJwt"
--- error_code: 401
--- response_body chomp
{"detail": "not authenticated"}



=== TEST 18: location /api/user still gets the client's cookie, as with the origin
--- request
GET /api/user/token?request_uri=/x
--- more_headers
Cookie: session=bob-session
--- error_code: 200
--- response_body_like chomp
\A[\w-]+\.[\w-]+\.[\w-]+\z
