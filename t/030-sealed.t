# Sealed sessions: AES-256-GCM cookies opened in the gateway, with no user-service call.
# The cookies come from t/sealed-vectors.json (made with Python's cryptography package)
# and from the same Python sealer for the bad cases.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity ();  # the business service in a server of its own
use File::Temp qw(tempdir);

my $dir = tempdir(CLEANUP => 1);
sub key_file {
    my ($name, $mode, $text) = @_;
    my $path = "$dir/$name";
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
    chmod $mode, $path or die "chmod $path: $!";
    return $path;
}
my $ring = <<'_EOK_';
# The first key seals; every key opens.
2026-11 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
k1 QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=
rot-2 paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU=
_EOK_
$ENV{TEST_NGINX_SEALED_KEYS} = key_file("identity.keys", 0600, $ring);
$ENV{TEST_NGINX_GROUP_KEYS} = key_file("group.keys", 0640, $ring);
$ENV{TEST_NGINX_OPEN_KEYS} = key_file("open.keys", 0644, $ring);
$ENV{TEST_NGINX_BAD_KEYS} = key_file("bad.keys", 0600, "k1 not-base64\n");

our $HttpConfig = <<'_EOC_';
    identity_sealed_keys $TEST_NGINX_SEALED_KEYS;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        location /user {
            if ($cookie_session = "") { return 401 "no session\n"; }
            return 200 '{"sub":"from-user-service"}';
        }
    }
_EOC_

our $Config = <<'_EOC_';
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_3/user; }
    location /api/ {
        identity_sealed session;
        identity_header X-User $identity;
        identity_header X-User-Id $identity_claim_sub;
        identity_header X-Roles $identity_claim_roles;
        proxy_set_header X-Status $identity_status;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /fallback/ {
        identity_sealed session;
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_sub;
        proxy_set_header X-Status $identity_status;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /young/ {
        identity_sealed session max_age=12h;
        identity_header X-User-Id $identity_claim_sub;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /host/ {
        identity_sealed __Host-sid;
        identity_header X-User-Id $identity_claim_sub;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        return 200 "id=$http_x_user_id roles=$http_x_roles status=$http_x_status user=$http_x_user\n";
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig) unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    $block->set_value("log_level", "debug");
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a sealed cookie opens with no call: identity, claims, SEALED
--- request
GET /api/x
--- more_headers
Cookie: theme=dark; session=AQcyMDI2LTExAAECAwQFBgcICQoLUNgaGLeComWvrWEKW3ktKap1G1UlmYGMw7QUatefaVTqpzEhsp-2Z2F-yPhsX390
--- response_body
id=alice roles= status=SEALED user={"sub":"alice","exp":4102444800}
--- no_error_log
[error]


=== TEST 2: any key of the ring opens (vector "claims", key k1); claims work as usual
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMcr-ur76ztut3sr4iBOLF6t8QBeZR2dOhO3imQhpB4AnwvH2J2MjTdlshmJ2plDF76_HutySwK4Rza6IfGxz8uqEeoI09mvv0wLrKGVXPe6kphwAIb5GMG5HBHFr5_Y25PDqdhViL-ZhwacqvOuo4tsfI4zz
--- response_body_like: ^id=bob roles=admin,dev status=SEALED user=\{"sub":"bob",


=== TEST 3: the cookie name is bound: __Host-sid opens where it is configured
--- request
GET /host/x
--- more_headers
Cookie: __Host-sid=AQVyb3QtMv_______________-Gwf1qs80fefMRWlfXvJLeP9u9vPjfgJZe26yHViN3U9ZiSWu0yq5MGBgOV8e4mfqRgLhrfE8TVVMXiAMd8v9RR
--- response_body_like: ^id=carol


=== TEST 4: a sealed value moved to another cookie name does not open
--- request
GET /api/x
--- more_headers
Cookie: session=AQVyb3QtMv_______________-Gwf1qs80fefMRWlfXvJLeP9u9vPjfgJZe26yHViN3U9ZiSWu0yq5MGBgOV8e4mfqRgLhrfE8TVVMXiAMd8v9RR
--- error_code: 401
--- error_log
identity: sealed cookie not used: authentication failed


=== TEST 5: no cookie: the same 401 as for a missing credential
--- request
GET /api/x
--- error_code: 401
--- response_body_like: 401 Authorization Required
--- error_log
identity: sealed cookie not used: truncated


=== TEST 6: a tampered byte: the same 401, the reason only in the debug log
--- request
GET /api/x
--- more_headers
Cookie: session=AQcyMDI2LTExAAECAwQFBgcICQoLUNgaGLeComWvrWEKW3ktKap1G1UlmYGMw7QUatefaVTqpzEhsp-2Z2F-yPhsX391
--- error_code: 401
--- response_body_like: 401 Authorization Required
--- error_log
identity: sealed cookie not used: authentication failed
--- no_error_log
[error]


=== TEST 7: an expired identity
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMREREREREREREREREX424eao5-eYhGYdjPT6w5ndAB1NnLkt5a7uDtl6k_9sr3u5B49WNmzeSyfhzYxa
--- error_code: 401
--- error_log
identity: sealed cookie not used: expired


=== TEST 8: not yet valid (nbf in the future)
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMQABAgMEBQYHCAkKC2PozUu9znznf3S1hDciETts8y5AOITWw_1rdckhMRGuIEhG0ak0OUBfRBzAhCjrPStt3bbr6wbRneB1yy0
--- error_code: 401
--- error_log
identity: sealed cookie not used: not yet valid


=== TEST 9: JSON that is not an object
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMQABAgMEBQYHCAkKC0PozUu9zmrnYi7phA_buiAXfJDUmj52cED0xpPF
--- error_code: 401
--- error_log
identity: sealed cookie not used: not a JSON object


=== TEST 10: no exp
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMQABAgMEBQYHCAkKC2PozUu9znznf3Tkt4l5_iGwfTrY_CrkEMKWPg
--- error_code: 401
--- error_log
identity: sealed cookie not used: no numeric exp


=== TEST 11: an unknown version
--- request
GET /api/x
--- more_headers
Cookie: session=AgJrMQABAgMEBQYHCAkKC2PozUu9znznf3S1hDciETts8y5AOITWw_1rdZjhXiZ0bjcXMRhAeFsI7YbU
--- error_code: 401
--- error_log
identity: sealed cookie not used: unknown version


=== TEST 12: a key id the ring does not hold
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrOQABAgMEBQYHCAkKC2PozUu9znznf3S1hDciETts8y5AOITWw_1rdZiGpzMrV0jWFRWDD9juLklu
--- error_code: 401
--- error_log
identity: sealed cookie not used: unknown key id


=== TEST 13.1: truncated
--- request
GET /api/x
--- more_headers
Cookie: session=AQcyMDI2LTExAAECAw
--- error_code: 401
--- error_log
sealed cookie not used: truncated


=== TEST 13.2: padded (base64 with '=')
--- request
GET /api/x
--- more_headers
Cookie: session=AQcyMDI2LTExAAECAwQFBgcICQoLUNgaGLeComWvrWEKW3ktKap1G1UlmYGMw7QUatefaVTqpzEhsp-2Z2F-yPhsX390==
--- error_code: 401
--- error_log
sealed cookie not used: not unpadded base64url


=== TEST 13.3: in the standard base64 alphabet
--- request
GET /api/x
--- more_headers
Cookie: session=AQcy+DI2LTExAAECAwQFBgcICQoLUNgaGLe/omWvrWEKW3ktKap1G1UlmYGMw7QUatefaVTqpzEhsp-2Z2F-yPhsX390
--- error_code: 401
--- error_log
sealed cookie not used: not unpadded base64url


=== TEST 13.4: oversized
--- request
GET /api/x
--- more_headers
Cookie: session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
--- error_code: 401
--- error_log
sealed cookie not used: too long


=== TEST 14: max_age refuses an identity issued too long ago
--- request
GET /young/x
--- more_headers
Cookie: session=AQJrMcr-ur76ztut3sr4iBOLF6t8QBeZR2dOhO3imQhpB4AnwvH2J2MjTdlshmJ2plDF76_HutySwK4Rza6IfGxz8uqEeoI09mvv0wLrKGVXPe6kphwAIb5GMG5HBHFr5_Y25PDqdhViL-ZhwacqvOuo4tsfI4zz
--- error_code: 401
--- error_log
identity: sealed cookie not used: older than max_age


=== TEST 15: with identity_request, a cookie that does not open falls back to the user service
--- request
GET /fallback/x
--- more_headers
Cookie: session=AQcyMDI2LTExAAECAwQFBgcICQoLUNgaGLeComWvrWEKW3ktKap1G1UlmYGMw7QUatefaVTqpzEhsp-2Z2F-yPhsX391
--- response_body
id=from-user-service roles= status=OK user=


=== TEST 16: with identity_request, a good sealed cookie still makes no call
--- request
GET /fallback/x
--- more_headers
Cookie: session=AQcyMDI2LTExAAECAwQFBgcICQoLUNgaGLeComWvrWEKW3ktKap1G1UlmYGMw7QUatefaVTqpzEhsp-2Z2F-yPhsX390
--- response_body
id=alice roles= status=SEALED user=
--- no_error_log
http subrequest "/_identity


=== TEST 17: spoofed identity headers are removed on the sealed path too
--- request
GET /api/x
--- more_headers
X-User: {"sub":"root"}
X-User-Id: root
X-Roles: admin
Cookie: session=AQcyMDI2LTExAAECAwQFBgcICQoLUNgaGLeComWvrWEKW3ktKap1G1UlmYGMw7QUatefaVTqpzEhsp-2Z2F-yPhsX390
--- response_body
id=alice roles= status=SEALED user={"sub":"alice","exp":4102444800}


=== TEST 18: a sealed claim holding CR/LF is never sent
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMQABAgMEBQYHCAkKC2PozUu9znznZgrr-jwCTFgyqnYeMJDT1el5IJ1zfUn8M0JA1a0wMUBfCRLFTQj8UIpbG0ZyBmyN0Wc
--- error_code: 503
--- error_log
identity_header "X-User-Id" value holds a carriage return


=== TEST 19: a key file readable by the group is accepted
--- http_config
    identity_sealed_keys $TEST_NGINX_GROUP_KEYS;
--- request
GET /api/x
--- more_headers
Cookie: session=AQcyMDI2LTExAAECAwQFBgcICQoLUNgaGLeComWvrWEKW3ktKap1G1UlmYGMw7QUatefaVTqpzEhsp-2Z2F-yPhsX390
--- response_body_like: ^id=alice


=== TEST 20: a key file readable by others stops nginx
--- http_config
    identity_sealed_keys $TEST_NGINX_OPEN_KEYS;
--- config
--- request
GET /
--- must_die
--- error_log
is readable by others than its owner and group


=== TEST 21: a missing key file stops nginx
--- http_config
    identity_sealed_keys /nonexistent/identity.keys;
--- config
--- request
GET /
--- must_die
--- error_log
"identity_sealed_keys" "/nonexistent/identity.keys" cannot be read


=== TEST 22: a malformed key file stops nginx, naming the line
--- http_config
    identity_sealed_keys $TEST_NGINX_BAD_KEYS;
--- config
--- request
GET /
--- must_die
--- error_log
line 1: the key is not base64 of exactly 32 bytes


=== TEST 23: identity_sealed without a key ring stops nginx
--- http_config
--- config
    location /api/ { identity_sealed session; }
--- request
GET /
--- must_die
--- error_log
"identity_sealed" needs "identity_sealed_keys" in the http block
