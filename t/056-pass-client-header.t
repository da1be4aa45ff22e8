# identity_pass_client_header: the client's copy of a protected header goes to the
# identity subrequest, and to nothing else (no upstream, no other location); it is a
# credential of its own, and the cache keys on its value. The mock user service answers
# with what it judged (the session cookie and X-Token it got), a line ending included.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity ();  # the business service in a server of its own

our $HttpConfig = <<'_EOC_';
    identity_cache_zone ids:1m;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        location /user {
            if ($http_x_token = "bad") { return 401 "bad token\n"; }
            return 200 "cookie=$cookie_session token=$http_x_token copies=$http_x_token_copies\n";
        }
    }
_EOC_

our $Config = <<'_EOC_';
    location = /_identity {
        internal;
        proxy_set_header X-Token-Copies $http_x_token;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/user;
    }
    location /api/ {
        identity_request /_identity;
        identity_key $cookie_session;
        identity_pass_client_header X-Token;
        identity_header X-Identity $identity;
        identity_cache ids;
        add_header X-Status $identity_status always;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /open/ {
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        return 200 "identity=[$http_x_identity] token=[$http_x_token]\n";
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig . ($block->http_config // ""));
    $block->set_value("config", $Config) unless defined $block->config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the client's X-Token alone is a credential: the user service gets it, the upstream never does
--- request
GET /api/x
--- more_headers
X-Token: t1
--- error_code: 200
--- response_headers
X-Status: MISS
--- response_body
identity=[cookie= token=t1 copies=t1] token=[]
--- no_error_log
[error]



=== TEST 2: the cache key includes the value: another token is another question, the same one a hit
--- request eval
["GET /api/x", "GET /api/x", "GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: session=s\nX-Token: t1", "Cookie: session=s\nX-Token: t2", "Cookie: session=s\nX-Token: t1", "Cookie: session=s"]
--- response_body eval
["identity=[cookie=s token=t1 copies=t1] token=[]\n",
 "identity=[cookie=s token=t2 copies=t2] token=[]\n",
 "identity=[cookie=s token=t1 copies=t1] token=[]\n",
 "identity=[cookie=s token= copies=] token=[]\n"]
--- response_headers eval
["X-Status: MISS", "X-Status: MISS", "X-Status: HIT", "X-Status: MISS"]



=== TEST 3: a refused token is the user service's to judge; its 401 is relayed
--- request
GET /api/x
--- more_headers
Cookie: session=s
X-Token: bad
--- error_code: 401
--- response_body
bad token



=== TEST 4: a location without the module, in the same server, never gets the client's copy
--- request
GET /open/x
--- more_headers
X-Token: t1
--- error_code: 200
--- response_body
identity=[] token=[]



=== TEST 5: look-alike spellings are stripped and not passed: no credential, no call
--- request
GET /api/x
--- more_headers
X_Token: t1
x.token: t2
--- error_code: 401
--- no_error_log
[error]



=== TEST 6: nginx -t: a name given twice at one level
--- config
    location / {
        identity_pass_client_header X-Token;
        identity_pass_client_header x-token;
    }
--- must_die
--- error_log
"identity_pass_client_header" is duplicate



=== TEST 7: nginx -t: not a header name
--- config
    location / {
        identity_pass_client_header "X Token";
    }
--- must_die
--- error_log
invalid header name "X Token"
