# Signed identity assertions (identity_assertion, identity_assertion_key, identity_jwks),
# checked by an implementation no one here wrote: PyJWT with PyJWKClient fetching the
# module's own JWKS URL (t/lib/verify_assertion.py), on the header the upstream received.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity ();  # the business service in a server of its own
use File::Temp qw(tempdir);
use MIME::Base64 qw(encode_base64url decode_base64url);

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
# The keys of src/core/assertion_key.rs's tests (the second as SEC1: openssl ec), and
# their RFC 7638 thumbprints.
my $key_a = <<'_EOK_';
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg35xn1W+ZKfGiGZFA
G4NeB8SgQfuhDN9ZfDlcrdh5Lx+hRANCAATEKJGwCsAIkrCzH4MKy1G/I7ZZ+GMA
0ZFNmzZbVd5q2UbRhCYg+JcsMmKPmAgdf2iMKQwtN21f7fp5DJpnu0hF
-----END PRIVATE KEY-----
_EOK_
my $key_b = <<'_EOK_';
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEINPqXBUzP6xF3XNDZwpEfF73gYyN4QdokhywJo2z0r0GoAoGCCqGSM49
AwEHoUQDQgAE7HYoq0AtzLWuGZLjXYaSiE6huh37yHun6jKr8LHxkGL3XXYdgUwq
SDTduqxfjK34ZNcn5dFN5nq+k6EIeQ+AkQ==
-----END EC PRIVATE KEY-----
_EOK_
our $KidA = 'i02Mp29UD849dE2wlPTmjw7AlSsBUnE4033-BPDNZWU';
our $KidB = 'OxuenIjM5z-X6zix9MHpqffDrjS7N-CbV4JvIf3wF9U';
$ENV{TEST_NGINX_KEY_A} = key_file("a.pem", 0600, $key_a);
$ENV{TEST_NGINX_KEY_B} = key_file("b.pem", 0640, $key_b);
$ENV{TEST_NGINX_OPEN_KEY} = key_file("open.pem", 0644, $key_a);
$ENV{TEST_NGINX_BAD_KEY} = key_file("bad.pem", 0600, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
$ENV{TEST_NGINX_SEALED_KEYS} = key_file("sealed.keys", 0600, "k1 QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=\n");

# A sealed cookie that expires in half an hour, sealed now by identity-seal.
my $target = $ENV{CARGO_TARGET_DIR} // 'target';
my ($sealer) = grep { -x } ("$target/release/identity-seal", 'target/release/identity-seal');
our $SealedExp = time() + 1800;
our $SealedCookie = '';
if ($sealer) {
    $SealedCookie = `$sealer --keys $ENV{TEST_NGINX_SEALED_KEYS} '{"sub":"sam","exp":$SealedExp}'`;
    chomp $SealedCookie;
}

# What a business service does with the token it received: verify it with PyJWT against
# the gateway's JWKS URL.
sub verify {
    my ($token, $aud, @iss) = @_;
    $token =~ s/\s+$//;
    my $port = $Test::Nginx::Util::ServerPortForClient;
    my $url = "http://127.0.0.1:$port/.well-known/identity/jwks.json";
    open my $fh, '-|', 'python3', 't/lib/verify_assertion.py', $url, $aud, $token, @iss
        or die "python3: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return $out;
}

# The checks on a token: its JOSE header, PyJWT's verdict (exp and iat replaced by the
# life between them), and PyJWT's verdict on copies with a changed claim, a wrong
# audience and a wrong issuer.
sub checks {
    my ($token, $aud) = @_;
    $token =~ s/\s+$//;
    return "no token\n" if $token eq '';
    my ($h, $p, $s) = split /\./, $token;
    my $out = decode_base64url($h) . "\n";
    my $ok = verify($token, $aud);
    my ($iat) = $ok =~ /"iat":(\d+)/;
    my ($exp) = $ok =~ /"exp":(\d+)/;
    $ok =~ s/"(iat|exp)":\d+,?//g;
    $out .= $ok;
    $out .= "life=" . ($exp - $iat) . "\n" if defined $iat && defined $exp;
    my $payload = decode_base64url($p);
    (my $forged = $payload) =~ s/"id":42/"id":1/;
    $out .= "tampered: " . verify(join('.', $h, encode_base64url($forged), $s), $aud);
    $out .= "audience: " . verify($token, "other");
    $out .= "issuer: " . verify($token, $aud, "someone-else");
    return $out;
}

our $HttpConfig = <<'_EOC_';
    identity_assertion_key $TEST_NGINX_KEY_A;
    identity_assertion_key $TEST_NGINX_KEY_B;
    identity_sealed_keys $TEST_NGINX_SEALED_KEYS;
    identity_cache_zone users:1m;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        location /user {
            if ($cookie_session = "") { return 401 "no session\n"; }
            if ($cookie_session = "denied") { return 403 "denied\n"; }
            if ($cookie_session = "array") { return 200 '[1]'; }
            return 200 '{"id":42,"name":"Ann","roles":["a","b"],"exp":1,"iss":"evil"}';
        }
    }
_EOC_

our $Config = <<'_EOC_';
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_3/user; }
    location /api/ {
        identity_request /_identity;
        identity_assertion X-Identity-Assertion audience=orders ttl=60s claims=id,roles;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /cached/ {
        identity_request /_identity;
        identity_cache users;
        identity_assertion X-Identity-Assertion audience=orders claims=id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /anon/ {
        identity_request /_identity;
        identity_anonymous on;
        identity_on_error pass;
        identity_assertion X-Identity-Assertion audience=orders;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /open/ {
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /sub/ {
        echo_location /open/x;
    }
    location /sealed/ {
        identity_sealed session;
        identity_assertion X-Identity-Assertion audience=orders ttl=1h;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /redirected/ {
        identity_request /_identity;
        identity_assertion X-Identity-Assertion audience=orders;
        echo_exec /other/x;
    }
    location /other/ {
        identity_sealed session;
        identity_anonymous on;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /.well-known/identity/jwks.json { identity_jwks; }
    location /backend {
        return 200 "$http_x_identity_assertion\n";
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

=== TEST 1: PyJWT, fetching the JWKS, accepts the upstream's assertion (signature, aud, iss, exp) and rejects a tampered one
--- request
GET /api/x
--- more_headers
Cookie: session=s1
--- response_body_filters eval
sub { main::checks(shift, "orders") }
--- response_body eval
qq{{"alg":"ES256","typ":"JWT","kid":"$main::KidA"}
{"claims":{"aud":"orders","id":42,"iss":"ngx-identity","roles":["a","b"],"sub":"42"},"kid":"$main::KidA"}
life=60
tampered: REJECTED InvalidSignatureError
audience: REJECTED InvalidAudienceError
issuer: REJECTED InvalidIssuerError
}
--- no_error_log
[error]


=== TEST 2: the JWKS lists every key, first first, as JSON that verifiers may cache for 5 minutes
--- request
GET /.well-known/identity/jwks.json
--- response_headers
Content-Type: application/json
Cache-Control: max-age=300
--- response_body_filters eval
sub { CORE::join ",", shift =~ /"kid":"([^"]+)"/g }
--- response_body eval
"$main::KidA,$main::KidB"


=== TEST 3: a client's X-Identity-Assertion is replaced by the gateway's
--- request
GET /api/x
--- more_headers
Cookie: session=s1
X-Identity-Assertion: forged
x-identity-assertion: forged.too
--- response_body_filters eval
sub { my $t = shift; $t =~ /forged/ ? "forged\n" : main::verify($t, "orders") =~ /"sub":"42"/ ? "verified\n" : $t }
--- response_body
verified


=== TEST 4: a client's X-Identity-Assertion never reaches an upstream of an unprotected location of the server
--- request
GET /open/x
--- more_headers
X-Identity-Assertion: forged
--- response_body eval
"\n"


=== TEST 5: nor through a subrequest
--- request
GET /sub/x
--- more_headers
X-Identity-Assertion: forged
--- response_body eval
"\n"


=== TEST 6: no assertion for an anonymous request; the client's copy is gone
--- request
GET /anon/x
--- more_headers
X-Identity-Assertion: forged
--- response_body eval
"\n"
--- no_error_log
[error]


=== TEST 7: a refused request reaches no upstream (the user service's refusal is relayed)
--- request
GET /api/x
--- more_headers
Cookie: session=denied
X-Identity-Assertion: forged
--- error_code: 403
--- response_body
denied


=== TEST 8: an identity that is not a JSON object makes no assertion: identity_on_error (503)
--- request
GET /api/x
--- more_headers
Cookie: session=array
--- error_code: 503
--- error_log
identity_assertion "X-Identity-Assertion": the identity is JSON but not an object


=== TEST 9: ... and with identity_on_error pass, the request goes on without one
--- request
GET /anon/x
--- more_headers
Cookie: session=array
X-Identity-Assertion: forged
--- response_body eval
"\n"
--- error_log
the identity is JSON but not an object


=== TEST 10: an internal redirect to a location with another question takes the previous location's assertion away
--- request
GET /redirected/x
--- more_headers
Cookie: session=s1
--- response_body eval
"\n"


=== TEST 11: on a cache hit the same assertion is sent again, not signed anew
--- request eval
["GET /cached/x", "GET /cached/x"]
--- more_headers
Cookie: session=reused
--- response_body_filters eval
sub {
    my $t = shift;
    return "no token\n" unless $t =~ /^ey/;
    my $seen = $main::Seen;
    $main::Seen = $t;
    return defined $seen ? ($seen eq $t ? "same\n" : "signed anew\n") : "first\n";
}
--- response_body eval
["first\n", "same\n"]


=== TEST 12: an assertion made from a sealed cookie expires with the cookie, not after its ttl
--- request
GET /sealed/x
--- more_headers eval
"Cookie: session=$main::SealedCookie"
--- response_body_filters eval
sub { my $out = main::verify(shift, "orders"); $out =~ /"exp":(\d+)/; ($1 // '') eq $main::SealedExp ? "capped\n" : $out }
--- response_body
capped


=== TEST 13: rotation: with the other key first, it signs; both are still published
--- http_config
    identity_assertion_key $TEST_NGINX_KEY_B;
    identity_assertion_key $TEST_NGINX_KEY_A;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        location /user { return 200 '{"id":42}'; }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_3/user; }
    location /api/ {
        identity_request /_identity;
        identity_assertion X-Identity-Assertion audience=orders;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /.well-known/identity/jwks.json { identity_jwks; }
    location /backend { return 200 "$http_x_identity_assertion\n"; }
--- request eval
["GET /api/x", "GET /.well-known/identity/jwks.json"]
--- more_headers
Cookie: session=s1
--- response_body_filters eval
sub {
    my $t = shift;
    return CORE::join(",", $t =~ /"kid":"([^"]+)"/g) . "\n" if $t =~ /^\{"keys"/;
    main::verify($t, "orders") =~ /"kid":"([^"]+)"}/ ? "signed by $1\n" : $t;
}
--- response_body eval
["signed by $main::KidB\n", "$main::KidB,$main::KidA\n"]


=== TEST 14: identity_assertion without identity_assertion_key stops nginx
--- http_config
--- config
    location /api/ { identity_assertion X-Identity-Assertion; }
--- request
GET /
--- must_die
--- error_log
"identity_assertion" needs "identity_assertion_key" in the http block


=== TEST 15: identity_jwks without identity_assertion_key stops nginx
--- http_config
--- config
    location /jwks { identity_jwks; }
--- request
GET /
--- must_die
--- error_log
"identity_jwks" needs "identity_assertion_key" in the http block


=== TEST 16: a registered claim in claims= stops nginx
--- config
    location /api/ { identity_assertion X-Identity-Assertion claims=id,exp; }
--- request
GET /
--- must_die
--- error_log
claims= names "exp", which the gateway sets itself


=== TEST 17: a world-readable key file stops nginx, naming it
--- http_config
    identity_assertion_key $TEST_NGINX_OPEN_KEY;
--- config
--- request
GET /
--- must_die
--- error_log eval
qr{"identity_assertion_key" "\Q$ENV{TEST_NGINX_OPEN_KEY}\E" is readable by others than its owner and group}


=== TEST 18: a missing key file stops nginx
--- http_config
    identity_assertion_key /nonexistent/identity-signing.pem;
--- config
--- request
GET /
--- must_die
--- error_log
"identity_assertion_key" "/nonexistent/identity-signing.pem" cannot be read


=== TEST 19: a file that is no EC private key stops nginx
--- http_config
    identity_assertion_key $TEST_NGINX_BAD_KEY;
--- config
--- request
GET /
--- must_die
--- error_log
holds a "PUBLIC KEY" block, not an EC P-256 "PRIVATE KEY" or "EC PRIVATE KEY"


=== TEST 20: the same key twice stops nginx
--- http_config
    identity_assertion_key $TEST_NGINX_KEY_A;
    identity_assertion_key $TEST_NGINX_KEY_A;
--- config
--- request
GET /
--- must_die
--- error_log
is the same key as an earlier identity_assertion_key


=== TEST 21: bad identity_assertion parameters stop nginx
--- config
    location /api/ { identity_assertion X-Identity-Assertion ttl=0s; }
--- request
GET /
--- must_die
--- error_log
the ttl must be at least 1s


=== TEST 22: the assertion header cannot also be an identity_header
--- config
    location /api/ {
        identity_header X-Identity-Assertion $identity;
        identity_assertion X-Identity-Assertion;
    }
--- request
GET /
--- must_die
--- error_log
an identity_header sets "X-Identity-Assertion" too
