# Headers nginx keeps shortcuts for (ngx_http_headers_in: X-Forwarded-For, User-Agent,
# Authorization, Referer, Via, ...): once stripped they are gone for every variable and
# module, not only from the list proxy_pass copies: $proxy_add_x_forwarded_for,
# $http_x_forwarded_for, $http_user_agent, $remote_user and the rest read nginx's
# shortcuts, which the module rebuilds from the list it rewrote.
# t/lib/Identity.pm builds each block's nginx config from its sections.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;

# What the gateway itself reads, sent to the business service in one header.
$ENV{TEST_NGINX_SEEN} = 'xff=[$http_x_forwarded_for] ua=[$http_user_agent] auth=[$http_authorization] xrip=[$http_x_real_ip] ref=[$http_referer] via=[$http_via] user=[$remote_user]';

identity_blocks(
    backend => 'return 200 "X-Forwarded-For: $http_x_forwarded_for\nX-Seen: $http_x_seen\n";',
    more_headers => <<'_EOH_');
Cookie: session=s1
X-Forwarded-For: 6.6.6.6
X-Forwarded-For: 7.7.7.7
User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1) forged
Authorization: Basic bWFsbG9yeTpzZWNyZXQ=
X-Real-IP: 6.6.6.6
Referer: http://forged.example/
Via: 1.1 forged
_EOH_
no_shuffle();
run_tests();

__DATA__

=== TEST 1: stripped on the allow path: $proxy_add_x_forwarded_for holds only the client address
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_strip X-Forwarded-For;
identity_strip X-Real-IP;
identity_strip User-Agent;
identity_strip Authorization;
identity_strip Referer;
identity_strip Via;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Seen "$TEST_NGINX_SEEN";
--- response_body
X-Forwarded-For: 127.0.0.1
X-Seen: xff=[] ua=[] auth=[] xrip=[] ref=[] via=[] user=[]



=== TEST 2: the same where the module only strips (no identity_request)
--- extra_config
    location /strip/ {
        identity_strip X-Forwarded-For;
        identity_strip X-Real-IP;
        identity_strip User-Agent;
        identity_strip Authorization;
        identity_strip Referer;
        identity_strip Via;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Seen "$TEST_NGINX_SEEN";
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request
GET /strip/x
--- response_body
X-Forwarded-For: 127.0.0.1
X-Seen: xff=[] ua=[] auth=[] xrip=[] ref=[] via=[] user=[]



=== TEST 3: values read before the strip (a set in the rewrite phase) are read again after it
--- extra_config
    location /strip/ {
        identity_strip X-Forwarded-For;
        identity_strip Authorization;
        identity_strip User-Agent;
        set $early "$http_x_forwarded_for|$remote_user|$http_user_agent|$proxy_add_x_forwarded_for";
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Seen "$TEST_NGINX_SEEN";
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- request
GET /strip/x
--- response_body
X-Forwarded-For: 127.0.0.1
X-Seen: xff=[] ua=[] auth=[] xrip=[6.6.6.6] ref=[http://forged.example/] via=[1.1 forged] user=[]



=== TEST 4: headers that are not stripped keep every copy, in order, in the rebuilt shortcuts
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_strip X-Real-IP;
identity_header X-User $identity_claim_id;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Seen "$TEST_NGINX_SEEN";
--- response_body
X-Forwarded-For: 6.6.6.6, 7.7.7.7, 127.0.0.1
X-Seen: xff=[6.6.6.6, 7.7.7.7] ua=[Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1) forged] auth=[Basic bWFsbG9yeTpzZWNyZXQ=] xrip=[] ref=[http://forged.example/] via=[1.1 forged] user=[mallory]



=== TEST 5: on the anonymous path too
--- api
identity_anonymous on;
identity_strip X-Forwarded-For;
identity_strip Authorization;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Seen "$TEST_NGINX_SEEN";
--- more_headers
X-Forwarded-For: 6.6.6.6
Authorization: Basic bWFsbG9yeTpzZWNyZXQ=
--- response_body
X-Forwarded-For: 127.0.0.1
X-Seen: xff=[] ua=[] auth=[] xrip=[] ref=[] via=[] user=[]



=== TEST 6: a stripped If-None-Match no longer makes nginx answer 304 for a static file
--- config
    location = /static.txt {
        identity_strip If-None-Match;
        root html;
    }
--- user_files
>>> static.txt
fresh
--- request
GET /static.txt
--- more_headers
If-None-Match: *
--- error_code: 200
--- response_body
fresh


=== TEST 7: an identity header nginx indexes is what nginx's own readers see
--- user_service
return 200 '{"id":"alice","ip":"10.0.0.1"}';
--- api
identity_header X-Forwarded-For $identity_claim_ip;
identity_header Authorization "Basic YWxpY2U6eA==";
proxy_set_header X-Seen "$TEST_NGINX_SEEN";
--- backend
return 200 "X-Seen: $http_x_seen\nX-Forwarded-For: $http_x_forwarded_for\nAuthorization: $http_authorization\n";
--- response_body
X-Seen: xff=[10.0.0.1] ua=[Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1) forged] auth=[Basic YWxpY2U6eA==] xrip=[6.6.6.6] ref=[http://forged.example/] via=[1.1 forged] user=[alice]
X-Forwarded-For: 10.0.0.1
Authorization: Basic YWxpY2U6eA==
