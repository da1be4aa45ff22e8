# identity_metrics: the Prometheus exposition of the module's counters, read with
# prometheus_client's parser (t/lib/metrics_summary.py), after a known sequence of
# requests. The key is the s argument, so one block can play several sessions.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity ();  # the business service in a server of its own
use File::Temp qw(tempdir);
use IPC::Open2;

my $dir = tempdir(CLEANUP => 1);
my $keys = "$dir/identity.keys";
open my $fh, '>', $keys or die "$keys: $!";
print $fh "k1 QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=\n";
close $fh;
chmod 0600, $keys or die "chmod $keys: $!";
$ENV{TEST_NGINX_SEALED_KEYS} = $keys;

# A metrics page becomes the summary the parser gives of it; other bodies stay.
sub summary {
    my $body = shift;
    return $body unless $body =~ /^# HELP /;
    my $pid = open2(my $out, my $in, 'python3', 't/lib/metrics_summary.py');
    print $in $body;
    close $in;
    local $/;
    my $text = <$out>;
    waitpid $pid, 0;
    return $? == 0 ? $text : "parser failed: $text";
}

our $HttpConfig = <<'_EOC_';
    identity_cache_zone users:1m;
    identity_sealed_keys $TEST_NGINX_SEALED_KEYS;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        location /user {
            if ($http_x_original_uri ~ "s=deny") { return 401 "denied\n"; }
            if ($http_x_original_uri ~ "s=fail") { return 500; }
            return 200 '{"id":"someone"}';
        }
    }
_EOC_

our $Config = <<'_EOC_';
    identity_key $arg_s;
    location = /_identity {
        internal;
        proxy_set_header X-Original-URI $request_uri;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/user;
    }
    location /api/ {
        identity_request /_identity;
        identity_cache users;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /nocache/ {
        identity_request /_identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /_down {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_9/user;
    }
    location /down/ {
        identity_request /_down;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /sealed/ {
        identity_sealed session;
        identity_anonymous on;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location = /logout {
        identity_cache_purge users;
    }
    location = /metrics {
        identity_metrics;
    }
    location /backend {
        return 200 "ok\n";
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

=== TEST 1: before any request: every family, every status at 0, the exposition's content type
--- request
GET /metrics
--- response_headers
Content-Type: text/plain; version=0.0.4
--- response_body_filters eval
\&main::summary
--- response_body
family nginx_identity_cache_bytes gauge
family nginx_identity_cache_coalesced counter
family nginx_identity_cache_entries gauge
family nginx_identity_cache_evictions counter
family nginx_identity_cache_purges counter
family nginx_identity_cache_size_bytes gauge
family nginx_identity_cache_stale counter
family nginx_identity_requests counter
family nginx_identity_sealed_failures counter
family nginx_identity_user_service_duration_seconds histogram
family nginx_identity_user_service_requests counter
nginx_identity_cache_bytes{zone=users} positive
nginx_identity_cache_size_bytes{zone=users} 1.04858e+06
nginx_identity_user_service_duration_seconds buckets 14 cumulative=True
nginx_identity_user_service_duration_seconds_sum present
statuses 10



=== TEST 2: 3 sessions, 10 requests (3 MISS, 7 HIT), a refusal, a failing and an unreachable user service, a bad sealed cookie, a logout
--- request eval
[
    (map { "GET /api/x?s=$_" } qw(a a a a b b b c c c)),
    "GET /nocache/x?s=deny",
    "GET /nocache/x?s=fail",
    "GET /down/x?s=z",
    "GET /sealed/x?c=1",
    "DELETE /logout?s=a",
    "GET /metrics",
]
--- more_headers
Cookie: session=bad!
--- error_code eval
[(200) x 10, 401, 503, 503, 200, 204, 200]
--- response_body_filters eval
\&main::summary
--- response_body eval
[("ok\n") x 10, "denied\n", qr/503/, qr/503/, "ok\n", "",
"family nginx_identity_cache_bytes gauge
family nginx_identity_cache_coalesced counter
family nginx_identity_cache_entries gauge
family nginx_identity_cache_evictions counter
family nginx_identity_cache_purges counter
family nginx_identity_cache_size_bytes gauge
family nginx_identity_cache_stale counter
family nginx_identity_requests counter
family nginx_identity_sealed_failures counter
family nginx_identity_user_service_duration_seconds histogram
family nginx_identity_user_service_requests counter
nginx_identity_cache_bytes{zone=users} positive
nginx_identity_cache_entries{zone=users} 2
nginx_identity_cache_purges_total{zone=users} 1
nginx_identity_cache_size_bytes{zone=users} 1.04858e+06
nginx_identity_requests_total{status=ANONYMOUS} 1
nginx_identity_requests_total{status=DENIED} 1
nginx_identity_requests_total{status=ERROR} 2
nginx_identity_requests_total{status=HIT} 7
nginx_identity_requests_total{status=MISS} 3
nginx_identity_sealed_failures_total{reason=base64} 1
nginx_identity_user_service_duration_seconds buckets 14 cumulative=True
nginx_identity_user_service_duration_seconds_count 6
nginx_identity_user_service_duration_seconds_sum present
nginx_identity_user_service_requests_total{result=2xx} 3
nginx_identity_user_service_requests_total{result=4xx} 1
nginx_identity_user_service_requests_total{result=5xx} 1
nginx_identity_user_service_requests_total{result=unreachable} 1
statuses 10
"]
