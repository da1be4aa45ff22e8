# Sealed sessions, strictness of the time claims: exp, iat and nbf are JSON integers from
# 0 to 253402300799, each at most once, and an iat more than 60 s ahead of the gateway's
# clock is refused. Each cookie below would open today if the claim were read loosely
# (1e300 or a number past 64 bits as "never", the first of two exp, ...).
# Cookies sealed with the key k1 of the ring below by the README's Python sealer
# (Python's cryptography package); the identity each holds is in the block's title.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
# The backend in a server of its own: the gateway's server strips the identity names.
use Identity ();
use File::Temp qw(tempdir);

my $dir = tempdir(CLEANUP => 1);
my $keys = "$dir/identity.keys";
open my $fh, '>', $keys or die "$keys: $!";
print $fh "2026-11 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
print $fh "k1 QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=\n";
close $fh;
chmod 0600, $keys or die "chmod $keys: $!";
$ENV{TEST_NGINX_SEALED_KEYS} = $keys;

our $HttpConfig = <<'_EOC_';
    identity_sealed_keys $TEST_NGINX_SEALED_KEYS;
_EOC_

our $Config = <<'_EOC_';
    location /api/ {
        identity_sealed session;
        identity_header X-User-Id $identity_claim_sub;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /young/ {
        identity_sealed session max_age=12h;
        identity_header X-User-Id $identity_claim_sub;
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
    $block->set_value("log_level", "debug");
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the sealed cookies of this file open when their claims are sound (control)
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMcr-ur76ztut3sr4iBOLF6t8QBeZR2dOhO3imQhpB4AnwvH2J2MjTdlshmJ2plDF76_HutySwK4Rza6IfGxz8uqEeoI09mvv0wLrKGVXPe6kphwAIb5GMG5HBHFr5_Y25PDqdhViL-ZhwacqvOuo4tsfI4zz
--- response_body
id=bob


=== TEST 2: exp 1e300 is not "never": {"sub":"mallory","exp":1e300}
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMUBAQEBAQEBAQEBAQNJ17o6BFm8VYdv_90I94cEB40LZEWpcPbChW02fwE0Ls00Zj1-yjNj5gDTy1Q
--- error_code: 401
--- response_body_unlike: mallory
--- error_log
sealed cookie not used: exp, iat or nbf is not an integer


=== TEST 3: exp as a float (4102444800.5) is refused: {"sub":"mallory","exp":4102444800.5}
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMUFBQUFBQUFBQUFBQaYQ9hGGwJEhHV7XzIGRlH7PSxGYvYg8jUOFvOX-ZrD-adMX8S_OrXa27juNL1sBFdADxfk
--- error_code: 401
--- response_body_unlike: mallory
--- error_log
sealed cookie not used: exp, iat or nbf is not an integer


=== TEST 4: exp past 64 bits (99999999999999999999) is not "never": {"sub":"mallory","exp":99999999999999999999}
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMUJCQkJCQkJCQkJCQrZC0KAVBw6X-i-CL_FWplCoFE-IGYuhWhkUUW-LP7-7R95yACTSjt0LHMLLyJUDmrgRu4eVyyL8xKIEOA
--- error_code: 401
--- response_body_unlike: mallory
--- error_log
sealed cookie not used: exp, iat or nbf is not an integer


=== TEST 5: exp as a string is refused: {"sub":"mallory","exp":"4102444800"}
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMUNDQ0NDQ0NDQ0NDQ27hjcVqGX4W8V4yx22UwkStZvVajAjG8KZRLZTHJrk81vaJSecjZvuwG1CeIIjJhCJ3xuk
--- error_code: 401
--- response_body_unlike: mallory
--- error_log
sealed cookie not used: exp, iat or nbf is not an integer


=== TEST 6: a far negative iat does not wrap max_age around: {"sub":"mallory","exp":4102444800,"iat":-9223372036854775808}
--- request
GET /young/x
--- more_headers
Cookie: session=AQJrMURERERERERERERERDokX8gf_efHEjWFO10Dpxixf-lSD82S9t_tWE8Jc0WJOk2pTjXFP95lrVbRmeOZj9RY-vKBZ9sFNhXPtwRMDnz4fLHXPRpFarA5rZaG
--- error_code: 401
--- response_body_unlike: mallory
--- error_log
sealed cookie not used: exp, iat or nbf is not an integer


=== TEST 7: exp twice (a future one first, an expired one last) is refused: {"sub":"mallory","exp":4102444800,"exp":1700000000}
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMUVFRUVFRUVFRUVFRdSSNYVSozjrHNaXLDWQDwg1uc-7Wgf16fkE87pox3Ui2SBEURln_1u-DgoUNuqWAo_rCaxyR7BJLgxHhmmHrV_MLOQ
--- error_code: 401
--- response_body_unlike: mallory
--- error_log
sealed cookie not used: exp, iat or nbf appears more than once


=== TEST 8: nbf twice (0 first, a future one last) is refused: {"sub":"mallory","exp":4102444800,"nbf":0,"nbf":4000000000}
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMUZGRkZGRkZGRkZGRj0qVB7PGNogs9c-ohKppEuzKEVY3ed6kX23uTAXw6nhCraqpH33CLIpvoyfii4YoBRKdD4vRig9urqjeFpdVOOo6e8nC48_XG6ypg
--- error_code: 401
--- response_body_unlike: mallory
--- error_log
sealed cookie not used: exp, iat or nbf appears more than once


=== TEST 9: iat twice (the second spelled i\\u0061t) is refused: {"sub":"mallory","iat":1700000000,"exp":4102444800,"i\u0061t":4000000000}
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMUdHR0dHR0dHR0dHRwkaTRzGLwALzoWDAUuQgSvuPuqbwkQd6ornXElPMcBChQzejTPpz_PxglPAZqXpa9KH84hkLKQN57DewZlBAB5BGASz0tTaYNa-S7KTZsauSpCoGsJl7ATD
--- error_code: 401
--- response_body_unlike: mallory
--- error_log
sealed cookie not used: exp, iat or nbf appears more than once


=== TEST 10: an iat far in the future is refused: {"sub":"mallory","exp":4102444800,"iat":4000000000}
--- request
GET /api/x
--- more_headers
Cookie: session=AQJrMUhISEhISEhISEhISEqESesmq0szsgSlazqt3CQ4M8E6VU4JV2y7RfLCp8KPieQUURuMhEnfO8iJeZ6E9A0IlxUCsYmmCZflsfWXZ5_EfYs
--- error_code: 401
--- response_body_unlike: mallory
--- error_log
sealed cookie not used: issued in the future


=== TEST 11: a sealed cookie sent twice (cookie tossing) is refused with 400, whichever would open
--- request
GET /api/x
--- more_headers
Cookie: session=AQcyMDI2LTExAAECAwQFBgcICQoLUNgaGLeComWvrWEKW3ktKap1G1UlmYGMw7QUatefaVTqpzEhsp-2Z2F-yPhsX390
Cookie: theme=dark; session=AQJrMcr-ur76ztut3sr4iBOLF6t8QBeZR2dOhO3imQhpB4AnwvH2J2MjTdlshmJ2plDF76_HutySwK4Rza6IfGxz8uqEeoI09mvv0wLrKGVXPe6kphwAIb5GMG5HBHFr5_Y25PDqdhViL-ZhwacqvOuo4tsfI4zz
--- error_code: 400
--- response_body_unlike: id=
--- error_log
identity: client sent the cookie "session" more than once



=== TEST 12: the sealed cookie is found where nginx finds $cookie_session: after a ',' and in any case
--- request eval
["GET /api/x", "GET /api/x"]
--- more_headers eval
["Cookie: theme=dark,session=AQJrMcr-ur76ztut3sr4iBOLF6t8QBeZR2dOhO3imQhpB4AnwvH2J2MjTdlshmJ2plDF76_HutySwK4Rza6IfGxz8uqEeoI09mvv0wLrKGVXPe6kphwAIb5GMG5HBHFr5_Y25PDqdhViL-ZhwacqvOuo4tsfI4zz\n",
 "Cookie: lang=fr; SESSION=AQJrMcr-ur76ztut3sr4iBOLF6t8QBeZR2dOhO3imQhpB4AnwvH2J2MjTdlshmJ2plDF76_HutySwK4Rza6IfGxz8uqEeoI09mvv0wLrKGVXPe6kphwAIb5GMG5HBHFr5_Y25PDqdhViL-ZhwacqvOuo4tsfI4zz\n"]
--- response_body eval
["id=bob\n", "id=bob\n"]
