# The core exchange: a session cookie becomes identity headers; refusals are relayed.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity ();  # the business service in a server of its own

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a valid session reaches the business service with its identity
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location /user {
            if ($cookie_session != "good") { return 401 "bad session"; }
            return 200 '{"id":"alice","roles":["admin","dev"]}';
        }
    }
--- config
    location = /_identity {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user;
    }
    location /api/ {
        identity_request /_identity;
        identity_header X-User $identity;
        identity_header X-User-Id $identity_claim_id;
        identity_header X-Roles $identity_claim_roles;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        return 200 "user=$http_x_user id=$http_x_user_id roles=$http_x_roles\n";
    }
--- request
GET /api/x
--- more_headers
Cookie: session=good
--- response_body
user={"id":"alice","roles":["admin","dev"]} id=alice roles=admin,dev
--- no_error_log
[error]
