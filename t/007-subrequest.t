# The identity subrequest: always a bodiless GET, with the client's credentials but
# without the client's body or connection headers.
# t/lib/Identity.pm builds each block's nginx config from its sections; here the
# business service shows what the user service answered (in X-Seen) and the body it got.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;

identity_blocks(backend => <<'_EOC_');
        echo_read_request_body;
        echo "user service: $http_x_seen";
        echo "business: $request_body";
_EOC_
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a POST with a body: the user service sees a GET without body headers
--- user_service
return 200 "m=$request_method cl=[$http_content_length] te=[$http_transfer_encoding] ct=[$http_content_type]";
--- api
identity_header X-Seen $identity;
--- backend
echo_read_request_body;
echo "user service: $http_x_seen";
echo "business: $echo_request_method $request_body";
--- request
POST /api/x
hello=world
--- more_headers
Cookie: session=s1
Content-Type: application/x-www-form-urlencoded
--- response_body
user service: m=GET cl=[] te=[] ct=[application/x-www-form-urlencoded]
business: POST hello=world



=== TEST 2: the user service gets no request body, even for a POST
--- user_service
echo_read_request_body;
echo -n "body=[$request_body]";
--- api
identity_header X-Seen $identity;
--- request
POST /api/x
secret-form-data
--- more_headers
Cookie: session=s1
--- response_body
user service: body=[]
business: secret-form-data



=== TEST 3: a chunked POST: the user service sees no Transfer-Encoding; the business gets the body
--- user_service
return 200 "m=$request_method cl=[$http_content_length] te=[$http_transfer_encoding]";
--- api
identity_header X-Seen $identity;
--- raw_request eval
"POST /api/x HTTP/1.1\r
Host: localhost\r
Cookie: session=s1\r
Transfer-Encoding: chunked\r
Connection: close\r
\r
5\r
hello\r
0\r
\r
"
--- response_body
user service: m=GET cl=[] te=[]
business: hello



=== TEST 4: PUT and DELETE reach the user service as GET
--- user_service
return 200 "m=$request_method";
--- api
identity_header X-Seen $identity;
--- backend
echo "user service: $http_x_seen, business: $echo_request_method";
--- pipelined_requests eval
["PUT /api/x\nput-body", "DELETE /api/x"]
--- more_headers
Cookie: session=s1
--- response_body eval
["user service: m=GET, business: PUT\n", "user service: m=GET, business: DELETE\n"]



=== TEST 5: Upgrade, Connection, Keep-Alive and Expect do not reach the user service
--- user_service
return 200 "up=[$http_upgrade] conn=[$http_connection] ka=[$http_keep_alive] expect=[$http_expect]";
--- config
    location = /_identity {
        internal;
        # nginx's proxy drops these by default; send them on if the subrequest had them.
        proxy_set_header Connection $http_connection;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Keep-Alive $http_keep_alive;
        proxy_set_header Expect $http_expect;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user;
    }
    location /api/ {
        identity_request /_identity;
        echo "user service: $identity";
    }
--- raw_request eval
"GET /api/x HTTP/1.1\r
Host: localhost\r
Cookie: session=s1\r
Upgrade: websocket\r
Connection: Upgrade, close\r
Keep-Alive: timeout=5\r
Expect: 100-continue\r
\r
"
--- response_body
user service: up=[] conn=[] ka=[] expect=[]



=== TEST 6: Cookie, Authorization and X-Forwarded-For reach the user service
--- user_service
return 200 "cookie=[$http_cookie] authz=[$http_authorization] xff=[$http_x_forwarded_for] ua=[$http_user_agent]";
--- api
identity_header X-Seen $identity;
--- backend
echo "user service: $http_x_seen";
--- more_headers
Cookie: session=s1; theme=dark
Authorization: Basic YWxpY2U6cHc=
X-Forwarded-For: 203.0.113.7
User-Agent: test-agent/1.0
--- response_body
user service: cookie=[session=s1; theme=dark] authz=[Basic YWxpY2U6cHc=] xff=[203.0.113.7] ua=[test-agent/1.0]



=== TEST 7: the identity location is internal: clients cannot call it directly
--- user_service
return 200 '{"id":"alice"}';
--- request
GET /_identity
--- error_code: 404



=== TEST 8: the business response reaches the client unchanged after an allow
--- user_service
add_header X-From-User-Service leaked;
return 200 '{"id":"alice"}';
--- backend
add_header X-From-Business yes;
return 201 "created\n";
--- more_headers
Cookie: session=s1
--- error_code: 201
--- response_headers
X-From-Business: yes
!X-From-User-Service
--- response_body
created



=== TEST 9: a subrequest into a location asking the same question is served with the main request's identity and makes no call of its own
--- http_config
    log_format asked 'USER SERVICE ASKED';
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location /user {
            access_log logs/error.log asked;
            return 200 '{"id":"alice"}';
        }
    }
--- config
    location = /_identity { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/user; }
    location /api/ {
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        echo_location /inner;
    }
    # nginx runs no access phase for a subrequest; the precontent check lets this one
    # through with the main request's identity (t/041-subrequests.t has the refusals).
    location /inner {
        identity_request /_identity;
        identity_header X-User-Id $identity_claim_id;
        echo "inner status=$identity_status user=$http_x_user_id";
    }
--- more_headers
Cookie: session=s1
--- response_body
inner status=OK user=alice
--- grep_error_log: USER SERVICE ASKED
--- grep_error_log_out
USER SERVICE ASKED



=== TEST 10: access-phase ordering: a deny rule of the same location still wins
--- user_service
return 200 '{"id":"alice"}';
--- api
deny all;
--- more_headers
Cookie: session=s1
--- error_code: 403



=== TEST 11: several requests on one keep-alive connection each get their own identity
--- user_service
return 200 '{"id":"$cookie_session"}';
--- api
identity_header X-User-Id $identity_claim_id;
--- backend
return 200 "id=$http_x_user_id\n";
--- pipelined_requests eval
["GET /api/a", "GET /api/b", "GET /api/c"]
--- more_headers eval
["Cookie: session=u1", "Cookie: session=u2", ""]
--- error_code eval
[200, 200, 401]
--- response_body_like eval
["^id=u1\n\$", "^id=u2\n\$", "401"]
