# Forward-auth services that answer with the identity in response headers and an empty
# body, read through $identity_answer_header_NAME: the README's oauth2-proxy and Authelia
# configurations, against t/lib/forward_auth_service.py, which answers as each documents
# (status, headers, empty body); then what the variables keep through the cache, an
# error_page redirect, an unsafe value, a missing header and identity_max_size.
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
system("python3 t/lib/forward_auth_service.py $mock_port $$ </dev/null >/dev/null 2>&1 &") == 0
    or die "cannot start t/lib/forward_auth_service.py";
for (1 .. 100) {
    last if IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mock_port);
    select(undef, undef, undef, 0.05);
}

# The README's two recipes, as written there (the service's address aside), and a
# business service that prints what it received.
our $Config = <<'_EOC_';
    # oauth2-proxy, run with --set-xauthrequest
    location = /oauth2/auth {
        internal;
        proxy_pass http://127.0.0.1:MOCK_PORT;
        proxy_set_header X-Original-URI $request_uri;
        proxy_ignore_headers X-Accel-Redirect;
    }
    location /app/ {
        identity_request /oauth2/auth;
        identity_key     $cookie__oauth2_proxy;
        identity_header  X-User   $identity_answer_header_x_auth_request_user;
        identity_header  X-Email  $identity_answer_header_x_auth_request_email;
        identity_header  X-Groups $identity_answer_header_x_auth_request_groups;
        add_header X-Identity-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }

    # Authelia
    location = /authelia {
        internal;
        proxy_pass http://127.0.0.1:MOCK_PORT/api/authz/forward-auth;
        proxy_set_header X-Forwarded-Method $request_method;
        proxy_set_header X-Forwarded-Proto  $scheme;
        proxy_set_header X-Forwarded-Host   $http_host;
        proxy_set_header X-Forwarded-Uri    $request_uri;
        proxy_set_header X-Forwarded-For    $remote_addr;
        proxy_ignore_headers X-Accel-Redirect;
    }
    location /wiki/ {
        identity_request /authelia;
        identity_key     $cookie_authelia_session$http_authorization;
        identity_header  Remote-User   $identity_answer_header_remote_user;
        identity_header  Remote-Groups $identity_answer_header_remote_groups;
        identity_header  Remote-Name   $identity_answer_header_remote_name;
        identity_header  Remote-Email  $identity_answer_header_remote_email;
        add_header X-Identity-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }

    location /backend {
        return 200 "user=[$http_x_user] email=[$http_x_email] groups=[$http_x_groups] remote=[$http_remote_user|$http_remote_groups|$http_remote_name|$http_remote_email]\n";
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

=== TEST 1: oauth2-proxy: a 202 with an empty body and X-Auth-Request-* headers is an identity; client copies are dropped
--- more_headers
Cookie: _oauth2_proxy=alice
X-User: root
X-Email: root@example.com
--- request
GET /app/x
--- response_body
user=[alice] email=[alice@example.com] groups=[admins,dev] remote=[|||]
--- response_headers
X-Identity-Status: OK
--- no_error_log
[error]



=== TEST 2: oauth2-proxy: a session it does not know gets its 401 and its body
--- more_headers
Cookie: _oauth2_proxy=expired
--- request
GET /app/x
--- error_code: 401
--- response_body
Unauthorized
--- response_headers
X-Identity-Status: DENIED
--- no_error_log
[error]



=== TEST 3: oauth2-proxy: no session cookie is 401 without a call
--- request
GET /app/x
--- error_code: 401
--- response_body_like: 401 Authorization Required
--- response_headers
X-Identity-Status: ANONYMOUS
--- no_error_log
[error]



=== TEST 4: Authelia: a 200 with an empty body and Remote-* headers is an identity; client copies are dropped
--- more_headers
Cookie: authelia_session=alice
Remote-User: root
Remote_Groups: admins
--- request
GET /wiki/x
--- response_body
user=[] email=[] groups=[] remote=[alice|admins,dev|Alice Liddell|alice@example.com]
--- response_headers
X-Identity-Status: OK
--- no_error_log
[error]



=== TEST 5: Authelia: without a valid session a browser is sent to the portal (its 302 relayed)
--- more_headers
Cookie: authelia_session=expired
Accept: text/html
--- request
GET /wiki/page?a=1
--- error_code: 302
--- response_headers_like
Location: ^https://auth\.example\.com/\?rd=http%3A%2F%2Flocalhost(%3A\d+)?%2Fwiki%2Fpage%3Fa%3D1&rm=GET$
--- no_error_log
[error]



=== TEST 6: Authelia: without a valid session an XHR gets its 401
--- more_headers
Cookie: authelia_session=expired
Accept: text/html
X-Requested-With: XMLHttpRequest
--- request
GET /wiki/page
--- error_code: 401
--- response_body chop
401 Unauthorized
--- no_error_log
[error]



=== TEST 7: Authelia's legacy /api/verify (the target in X-Original-URL) answers the same way
--- config
    location = /verify {
        internal;
        proxy_pass http://127.0.0.1:MOCK_PORT/api/verify?rd=https://auth.example.com/;
        proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
        proxy_set_header X-Original-Method $request_method;
        proxy_ignore_headers X-Accel-Redirect;
    }
    location /legacy/ {
        identity_request /verify;
        identity_key     $cookie_authelia_session;
        identity_header  Remote-User $identity_answer_header_remote_user;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- more_headers
Cookie: authelia_session=bob
--- request
GET /legacy/x
--- response_body
user=[] email=[] groups=[] remote=[bob|||]
--- no_error_log
[error]



=== TEST 8: a cache hit gives the values the call gave (X-Call counts the mock's calls)
--- config
    location /cached/ {
        identity_request /oauth2/auth;
        identity_key     $cookie__oauth2_proxy;
        identity_cache   users;
        identity_header  X-User $identity_answer_header_x_auth_request_user;
        echo "$identity_status user=$identity_answer_header_x_auth_request_user call=$identity_answer_header_x_call";
    }
--- pipelined_requests eval
["GET /cached/x", "GET /cached/y"]
--- more_headers
Cookie: _oauth2_proxy=counted-t6
--- response_body eval
["MISS user=carol call=1\n", "HIT user=carol call=1\n"]
--- no_error_log
[error]



=== TEST 9: after an error_page redirect the values stay, in the new location and in the log
--- http_config
    log_format fwd "answer-user=$identity_answer_header_x_auth_request_user";
--- config
    location /redirected/ {
        identity_request /oauth2/auth;
        identity_key     $cookie__oauth2_proxy;
        identity_header  X-User $identity_answer_header_x_auth_request_user;
        proxy_intercept_errors on;
        error_page 404 = /fallback;
        proxy_pass http://127.0.0.1:MOCK_PORT/missing;
    }
    location = /fallback {
        access_log logs/error.log fwd;
        return 200 "fallback user=$identity_answer_header_x_auth_request_user groups=$identity_answer_header_x_auth_request_groups\n";
    }
--- more_headers
Cookie: _oauth2_proxy=bob
--- request
GET /redirected/x
--- response_body
fallback user=bob groups=dev
--- error_log
answer-user=bob



=== TEST 10: an unsafe value in a header a variable reads fails closed (identity_on_error)
--- more_headers
Cookie: _oauth2_proxy=ctl
--- request
GET /app/x
--- error_code: 503
--- response_headers
X-Identity-Status: ERROR
--- error_log
identity: the user service's header read by "$identity_answer_header_x_auth_request_user" holds the control byte 0x01



=== TEST 11: an unsafe value fails closed even where only a variable outside identity_header reads it
--- config
    location /shown/ {
        identity_request /oauth2/auth;
        identity_key     $cookie__oauth2_proxy;
        echo "user=$identity_answer_header_x_auth_request_user";
    }
--- more_headers
Cookie: _oauth2_proxy=ctl
--- request
GET /shown/x
--- error_code: 503
--- error_log
holds the control byte 0x01



=== TEST 12: a referenced header the answer lacks reads as empty, and its identity_header is not set
--- config
    location /nomail/ {
        identity_request /oauth2/auth;
        identity_key     $cookie__oauth2_proxy;
        identity_header  X-User  $identity_answer_header_x_auth_request_user;
        identity_header  X-Email $identity_answer_header_x_auth_request_email;
        identity_header  X-Groups "[$identity_answer_header_x_auth_request_email]";
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- more_headers
Cookie: _oauth2_proxy=nomail
--- request
GET /nomail/x
--- response_body
user=[nomail] email=[] groups=[[]] remote=[|||]
--- no_error_log
[error]



=== TEST 13: the kept values count against identity_max_size with the body
--- config
    location /small/ {
        identity_request /oauth2/auth;
        identity_key     $cookie__oauth2_proxy;
        identity_max_size 24;
        identity_header  X-User  $identity_answer_header_x_auth_request_user;
        identity_header  X-Email $identity_answer_header_x_auth_request_email;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- more_headers
Cookie: _oauth2_proxy=alice
--- request
GET /small/x
--- error_code: 503
--- error_log
the user service's body and the headers $identity_answer_header_* reads are larger than identity_max_size



=== TEST 14: the values are empty where no identity was accepted (a refusal, with identity_anonymous)
--- config
    location /open/ {
        identity_request /oauth2/auth;
        identity_key     $cookie__oauth2_proxy;
        identity_anonymous on;
        echo "$identity_status user=[$identity_answer_header_x_auth_request_user]";
    }
--- more_headers
Cookie: _oauth2_proxy=expired
--- request
GET /open/x
--- response_body
DENIED user=[]
--- no_error_log
[error]
