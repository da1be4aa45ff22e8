# $identity, $identity_claim_NAME and $identity_status.
# t/lib/Identity.pm builds each block's nginx config from its sections. Every block
# sends Cookie: session=s1.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;

identity_blocks(more_headers => "Cookie: session=s1");
no_shuffle();
run_tests();

__DATA__

=== TEST 1: $identity is the user service's 2xx body as is
--- user_service
return 200 '{"id": "alice",\t"x" : 1}';
--- api
identity_header X-User $identity;
--- backend
return 200 "[$http_x_user]\n";
--- response_body
[{"id": "alice",	"x" : 1}]



=== TEST 2: string, number, boolean claims
--- user_service
return 200 '{"id":"alice","uid":1042,"score":-1.50,"admin":true,"mfa":false}';
--- api
identity_header X-Id $identity_claim_id;
identity_header X-Uid $identity_claim_uid;
identity_header X-Score $identity_claim_score;
identity_header X-Admin $identity_claim_admin;
identity_header X-Mfa $identity_claim_mfa;
--- backend
return 200 "id=$http_x_id uid=$http_x_uid score=$http_x_score admin=$http_x_admin mfa=$http_x_mfa\n";
--- response_body
id=alice uid=1042 score=-1.50 admin=true mfa=false



=== TEST 3: an array of scalars is joined with commas
--- user_service
return 200 '{"roles":["admin","dev"],"ids":[1,2,3],"none":[]}';
--- api
identity_header X-Roles $identity_claim_roles;
identity_header X-Ids $identity_claim_ids;
identity_header X-None "[$identity_claim_none]";
--- backend
return 200 "roles=$http_x_roles ids=$http_x_ids none=$http_x_none\n";
--- response_body
roles=admin,dev ids=1,2,3 none=[]



=== TEST 4: an object claim is compact JSON
--- user_service
return 200 '{"org": { "name" : "acme", "tier": 2 }}';
--- api
identity_header X-Org $identity_claim_org;
--- backend
return 200 "org=$http_x_org\n";
--- response_body
org={"name":"acme","tier":2}



=== TEST 5: an absent claim is empty, and its header is not set
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_header X-Id $identity_claim_id;
identity_header X-Email $identity_claim_email;
identity_header X-Email-Text "<$identity_claim_email>";
--- backend
return 200 "$echo_client_request_headers";
--- response_body_filters eval
main::header_lines('x-id|x-email[-a-z]*')
--- response_body
X-Id: alice
X-Email-Text: <>



=== TEST 6: a claim name is matched exactly first, then case-insensitively
--- user_service
return 200 '{"userId":"u-camel","UserName":"bob","username_x":"other"}';
--- api
identity_header X-Uid $identity_claim_userid;
identity_header X-Name $identity_claim_username;
--- backend
return 200 "uid=$http_x_uid name=$http_x_name\n";
--- response_body
uid=u-camel name=bob



=== TEST 7: an exact-case claim wins over a case-insensitive one
--- user_service
return 200 '{"USERID":"upper","userid":"lower","UserId":"mixed"}';
--- api
identity_header X-Uid $identity_claim_userid;
--- backend
return 200 "uid=$http_x_uid\n";
--- response_body
uid=lower



=== TEST 8: JSON string escapes are decoded (\u00e9, \/, \")
--- user_service
return 200 '{"name":"Jos\\u00e9 \\"JJ\\" a\\/b"}';
--- api
identity_header X-Name $identity_claim_name;
--- backend
return 200 "name=$http_x_name\n";
--- response_body
name=José "JJ" a/b



=== TEST 9: claims and $identity can be used by other directives (proxy_set_header, add_header)
--- user_service
return 200 '{"id":"alice","tenant":"t9"}';
--- api
proxy_set_header X-Tenant $identity_claim_tenant;
add_header X-Identity-Id $identity_claim_id always;
--- backend
return 200 "tenant=$http_x_tenant\n";
--- response_headers
X-Identity-Id: alice
--- response_body
tenant=t9



=== TEST 10: $identity_status is OK after a 2xx
--- user_service
return 200 '{"id":"alice"}';
--- api
add_header X-Identity-Status $identity_status always;
--- response_headers
X-Identity-Status: OK



=== TEST 11: $identity_status is DENIED on a relayed refusal
--- user_service
return 403 "no\n";
--- api
add_header X-Identity-Status $identity_status always;
--- error_code: 403
--- response_headers
X-Identity-Status: DENIED



=== TEST 12: $identity_status is ERROR on the error path
--- user_service
return 502;
--- api
add_header X-Identity-Status $identity_status always;
--- error_code: 503
--- response_headers
X-Identity-Status: ERROR



=== TEST 13: $identity_status is BYPASS where identity_request is off, and the claims are empty
--- extra_config
    location /public/ {
        proxy_set_header X-Status $identity_status;
        proxy_set_header X-Id $identity_claim_id;
        proxy_set_header X-Identity $identity;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- backend
return 200 "status=$http_x_status id=[$http_x_id] identity=[$http_x_identity]\n";
--- request
GET /public/x
--- response_body
status=BYPASS id=[] identity=[]



=== TEST 14: a refusal's body is not exposed as $identity
--- user_service
return 401 '{"id":"not-you"}';
--- api
identity_anonymous on;
identity_header X-User $identity;
proxy_set_header X-Id $identity_claim_id;
proxy_set_header X-Raw $identity;
--- backend
return 200 "user=[$http_x_user] id=[$http_x_id] raw=[$http_x_raw]\n";
--- response_body
user=[] id=[] raw=[]



=== TEST 15: an error answer's body is not exposed as $identity with on_error pass
--- user_service
return 500 '{"id":"from-error"}';
--- api
identity_on_error pass;
proxy_set_header X-Id $identity_claim_id;
proxy_set_header X-Raw $identity;
--- backend
return 200 "id=[$http_x_id] raw=[$http_x_raw]\n";
--- response_body
id=[] raw=[]



=== TEST 16: re-entry on purpose: identity headers, add_header and the access log read the variables while the module works
--- http_config
    log_format identity_seen escape=none 'logged id=$identity_claim_id user=$identity status=$identity_status';
--- user_service
return 200 '{"id":"alice"}';
--- api
identity_header X-Id $identity_claim_id;
identity_header X-User $identity;
identity_header X-Both "$identity_claim_id $identity $identity_status";
add_header X-Seen "$identity_claim_id $identity_status" always;
access_log logs/error.log identity_seen;
--- backend
return 200 "[$http_x_id] [$http_x_user] [$http_x_both]\n";
--- response_body
[alice] [{"id":"alice"}] [alice {"id":"alice"}]
--- response_headers
X-Seen: alice OK
--- error_log
logged id=alice user={"id":"alice"} status=OK



=== TEST 17: re-entry on purpose while a refusal is relayed: the header filter and the log read the variables
--- http_config
    log_format identity_seen escape=none 'logged status=$identity_status user=[$identity]';
--- user_service
return 401 "go away\n";
--- api
identity_header X-User $identity;
add_header X-Seen "[$identity_claim_id] $identity_status" always;
access_log logs/error.log identity_seen;
--- error_code: 401
--- response_body
go away
--- response_headers
X-Seen: [] DENIED
--- error_log eval
qr/logged status=DENIED user=\[-?\]/



=== TEST 18: a variable of the configuration's own, named like a claim variable, is the one a header reads, as in nginx
--- http_config
    map $uri $identity_claim_role { default "mapped"; }
--- user_service
return 200 '{"role":"admin","id":"alice"}';
--- api
identity_header X-Role $identity_claim_role;
identity_header X-Id $identity_claim_id;
--- backend
return 200 "role=$http_x_role id=$http_x_id\n";
--- response_body
role=mapped id=alice



=== TEST 19: an identity_key that is a regex capture ($1) is the capture, not a variable called "1"
--- user_service
return 200 '{"id":"alice"}';
--- extra_config
    location ~ ^/cap/(\w+)$ {
        identity_request /_identity;
        identity_key $1;
        identity_header X-Id $identity_claim_id;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
--- backend
return 200 "id=$http_x_id\n";
--- request
GET /cap/tok1
--- response_body
id=alice



=== TEST 20: the same for answer-header variables; a header read as ${identity_answer_header_X_Name} is the one nginx gives
--- http_config
    map $uri $identity_answer_header_x_role { default "mapped"; }
--- user_service
add_header X-Role admin;
add_header X-Team core;
return 200 '{"id":"alice"}';
--- api
identity_header X-Role $identity_answer_header_x_role;
identity_header X-Team ${identity_answer_header_X_Team};
--- backend
return 200 "role=$http_x_role team=$http_x_team\n";
--- response_body
role=mapped team=core
