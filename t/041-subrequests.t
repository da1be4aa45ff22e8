# Attacks through subrequests. nginx runs no access phase for a subrequest, and a
# subrequest shares its main request's header list, so: a server{} that protects a header
# name anywhere strips it from every request of the server in the post-read phase, and a
# subrequest into a location where the module is active is served only with the main
# request's identity, accepted for the same question; otherwise it gets 401.
# The client always sends a forged X-User; the business service (a server of its own,
# see t/lib/Identity.pm) shows the X-User it got.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity ();

our $HttpConfig = <<'_EOC_';
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location /user {
            if ($cookie_session != "good") { return 401; }
            return 200 '{"id":"alice"}';
        }
    }
_EOC_

our $Config = <<'_EOC_';
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user; }
    location = /_identity_admin { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user; }
    location /api/ {
        identity_request /_identity;
        identity_header X-User $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /admin/ {
        identity_request /_identity_admin;
        identity_header X-User $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /public/ {
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        access_log logs/error.log seen;
        return 200 "user=[$http_x_user]\n";
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config",
        $HttpConfig . "    log_format seen 'backend saw user=[\$http_x_user]';\n"
        . ($block->http_config // ""));
    $block->set_value("config", $Config . ($block->config // ""));
    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "X-User: forged");
    }
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: SSI include virtual from an open page into a protected location: refused, the forged header never reaches the business
--- config
    location = /page {
        default_type text/html;
        ssi on;
        echo -n 'page:<!--# include virtual="/api/orders" -->';
    }
--- request
GET /page
--- response_body_unlike: forged
--- response_body_like: ^page:.*401 Authorization Required
--- error_log
subrequest to a protected location refused
--- no_error_log
backend saw



=== TEST 2: SSI include from a protected page into a location asking the same question: served with the main request's identity
--- config
    location = /app {
        identity_request /_identity;
        identity_header X-User $identity;
        default_type text/html;
        ssi on;
        echo -n 'page:<!--# include virtual="/api/orders" -->';
    }
--- request
GET /app
--- more_headers
X-User: forged
Cookie: session=good
--- response_body
page:user=[{"id":"alice"}]
--- no_error_log
backend saw user=[forged]



=== TEST 3: SSI include from a protected page into a location asking another question: refused
--- config
    location = /app {
        identity_request /_identity;
        identity_header X-User $identity;
        default_type text/html;
        ssi on;
        echo -n 'page:<!--# include virtual="/admin/panel" -->';
    }
--- request
GET /app
--- more_headers
X-User: forged
Cookie: session=good
--- response_body_like: ^page:.*401 Authorization Required
--- error_log
subrequest to a protected location refused
--- no_error_log
backend saw



=== TEST 4: SSI include from a page whose identity was refused: refused too
--- config
    location = /app {
        identity_request /_identity;
        identity_anonymous on;
        default_type text/html;
        ssi on;
        echo -n 'page:<!--# include virtual="/api/orders" -->';
    }
--- request
GET /app
--- more_headers
X-User: forged
Cookie: session=bad
--- response_body_like: ^page:.*401 Authorization Required
--- no_error_log
backend saw



=== TEST 5: mirror into a protected location: refused, the forged header never reaches the business
--- config
    location = /page {
        mirror /api/audit;
        echo page;
    }
--- request
GET /page
--- response_body
page
--- error_log
subrequest to a protected location refused
--- no_error_log
backend saw



=== TEST 6: auth_request into a protected location: refused without an identity
--- skip_eval
3: system("$ENV{TEST_NGINX_BINARY} -V 2>&1 | grep -q http_auth_request_module") != 0
--- config
    location = /guarded {
        auth_request /api/check;
        echo "guarded content";
    }
--- request
GET /guarded
--- error_code: 401
--- error_log
subrequest to a protected location refused
--- no_error_log
backend saw



=== TEST 7: echo_location into a protected location: refused, the forged header never reaches the business
--- config
    location = /page {
        echo_location /api/orders;
    }
--- request
GET /page
--- response_body_unlike: forged
--- error_log
subrequest to a protected location refused
--- no_error_log
backend saw



=== TEST 8: echo_subrequest into a protected location: refused
--- config
    location = /page {
        echo_subrequest GET /api/orders;
    }
--- request
GET /page
--- response_body_unlike: forged
--- error_log
subrequest to a protected location refused
--- no_error_log
backend saw



=== TEST 9: echo_location into an open location of the same server: the forged header is gone
--- config
    location = /page {
        echo_location /public/x;
    }
--- request
GET /page
--- response_body
user=[]



=== TEST 10: a main request to an open location of a server that protects X-User: the forged header is gone
--- request
GET /public/x
--- response_body
user=[]



=== TEST 11: the module's own identity subrequest passes where its location inherits identity_request
--- config
    identity_request /_identity;
    identity_header X-User $identity;
--- request
GET /public/x
--- more_headers
X-User: forged
Cookie: session=good
--- response_body
user=[{"id":"alice"}]
--- no_error_log
[error]
