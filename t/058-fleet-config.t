# identity_cache_sync: what nginx -t refuses (naming the directive and the value), what it
# accepts, and a gateway whose Redis is unreachable still serving. The fleet's behaviour
# with a real Redis is t/rust/fleet.rs.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;
use File::Temp qw(tempdir);

my $dir = tempdir(CLEANUP => 1);
sub secret_file {
    my ($name, $mode, $bytes) = @_;
    my $path = "$dir/$name";
    open my $fh, '>', $path or die "$path: $!";
    binmode $fh;
    print $fh $bytes;
    close $fh;
    chmod $mode, $path or die "chmod $path: $!";
    return $path;
}
$ENV{TEST_NGINX_FLEET_KEY} = secret_file("fleet.key", 0600, "k" x 48);
$ENV{TEST_NGINX_GROUP_KEY} = secret_file("group.key", 0640, "g" x 32);
$ENV{TEST_NGINX_SHORT_KEY} = secret_file("short.key", 0600, "s" x 16);
$ENV{TEST_NGINX_OPEN_KEY} = secret_file("open.key", 0644, "o" x 48);
$ENV{TEST_NGINX_MISSING_KEY} = "$dir/no-such.key";

identity_blocks();
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a zone no identity_cache_zone declares is refused
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync nozone redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*"nozone"|"nozone".*identity_cache_sync/



=== TEST 2: a URL that is not redis:// is refused
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users http://127.0.0.1:$TEST_NGINX_RAND_PORT_7;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*http:\/\/127\.0\.0\.1/



=== TEST 3: rediss:// (TLS) is refused
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users rediss://127.0.0.1:$TEST_NGINX_RAND_PORT_7;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*rediss:\/\//



=== TEST 4: a password in the URL is refused (it goes in password=)
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://:hunter2@127.0.0.1:$TEST_NGINX_RAND_PORT_7;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*password=/



=== TEST 5: a user and password in the URL are refused too
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://default:hunter2@127.0.0.1:$TEST_NGINX_RAND_PORT_7;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*password=/



=== TEST 6: port 0 is refused
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://127.0.0.1:0;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*redis:\/\/127\.0\.0\.1:0/



=== TEST 7: a port above 65535 is refused
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://127.0.0.1:65536;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*65536/



=== TEST 8: a database that is not a number is refused
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7/abc;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*\/abc/



=== TEST 9: offline= that is not a time is refused
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7 offline=abc;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*offline.*"abc"|"identity_cache_sync".*"offline=abc"/



=== TEST 10: offline=0 is refused (an entry must live a little while the link is down)
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7 offline=0;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*offline.*"0"|"identity_cache_sync".*"offline=0"/



=== TEST 11: an unknown parameter is refused
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7 chanel=typo;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*chanel=typo/



=== TEST 12: a zone synced twice is refused
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7;
    identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_6 channel=other;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*"users".*twice|"identity_cache_sync".*duplicate.*"users"/i



=== TEST 13: a missing secret file is refused
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7 secret=$TEST_NGINX_MISSING_KEY;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*no-such\.key/



=== TEST 14: a secret shorter than 32 bytes is refused
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7 secret=$TEST_NGINX_SHORT_KEY;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*short\.key.*(short|32)/



=== TEST 15: a secret file others can read is refused
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7 secret=$TEST_NGINX_OPEN_KEY;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*open\.key.*(others|readable)/



=== TEST 16: the error never shows the password
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7 password=s3cr3t-pw offline=abc;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync"/
--- no_error_log
s3cr3t-pw



=== TEST 17: every parameter, a group-readable secret: accepted; with Redis unreachable, the gateway serves (requests never wait for Redis)
--- user_service
    return 200 '{"id":"alice"}';
--- http_config
    identity_cache_zone users:1m;
    identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7/3 channel=fleet-x password=pw secret=$TEST_NGINX_GROUP_KEY offline=5s;
--- api
    identity_cache users;
    identity_header X-User-Id $identity_claim_id;
--- backend
    return 200 "id=$http_x_user_id\n";
--- more_headers
Cookie: session=s1
--- response_body
id=alice
--- no_error_log
[emerg]
[alert]
[crit]



=== TEST 18: two zones, each synced, both with the defaults (channel ngx-identity:ZONE)
--- user_service
    return 200 '{"id":"bob"}';
--- http_config
    identity_cache_zone users:1m;
    identity_cache_zone admins:1m;
    identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7;
    identity_cache_sync admins redis://localhost:$TEST_NGINX_RAND_PORT_7;
--- api
    identity_cache admins;
    identity_header X-User-Id $identity_claim_id;
--- backend
    return 200 "id=$http_x_user_id\n";
--- more_headers
Cookie: session=s2
--- response_body
id=bob
--- no_error_log
[emerg]
[crit]



=== TEST 19: every synced zone must share one fleet secret
--- http_config
    identity_cache_zone users:1m;
    identity_cache_zone admins:1m;
    identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7 secret=$TEST_NGINX_FLEET_KEY;
    identity_cache_sync admins redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7;
--- config
    location /api/ { return 200; }
--- must_die
--- error_log eval
qr/"identity_cache_sync".*secret/



=== TEST 20: identity_cache_sync is http-level only
--- http_config
    identity_cache_zone users:1m;
--- config
    location /api/ {
        identity_cache_sync users redis://127.0.0.1:$TEST_NGINX_RAND_PORT_7;
        return 200;
    }
--- must_die
--- error_log eval
qr/"identity_cache_sync" directive is not allowed here/
