# $identity_claim_NAME on cache hits. A cache entry keeps the index of its body's claims
# (issue 12), and a hit reads them from it without parsing the JSON (or parses the body
# when the entry holds no index: escaped keys, more than 16 claims). Every claim, and
# every refusal, must be the same on the hit as on the miss that stored it. The second
# request of each block asks with X-Mode: later, which the user service would answer
# differently, so what it gets comes from the cache.
use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Identity;

identity_blocks();
no_shuffle();
run_tests();

__DATA__

=== TEST 1: every kind of claim reads the same on the hit as on the miss
--- http_config
identity_cache_zone users:1m;
--- user_service
if ($http_x_mode = "later") { return 200 '{"id":"changed"}'; }
return 200 ' { "id" : "alice", "userId":"u-7", "name":"Jos\\u00e9 \\"JJ\\"", "n":-1.50e3, "admin":true, "roles":["admin","dev",3], "org":{ "b" : 1 }, "nil":null, "id":"second" } ';
--- api
identity_cache users;
identity_header X-Id $identity_claim_id;
identity_header X-Userid $identity_claim_userid;
identity_header X-Name $identity_claim_name;
identity_header X-N $identity_claim_n;
identity_header X-Admin $identity_claim_admin;
identity_header X-Roles $identity_claim_roles;
identity_header X-Org $identity_claim_org;
identity_header X-Nil "[$identity_claim_nil]";
add_header X-Status $identity_status always;
add_header X-Claim-After $identity_claim_id always;
--- backend
return 200 "id=$http_x_id userid=$http_x_userid name=$http_x_name n=$http_x_n admin=$http_x_admin roles=$http_x_roles org=$http_x_org nil=$http_x_nil\n";
--- request eval
["GET /api/1", "GET /api/2"]
--- more_headers eval
["Cookie: session=s1\nX-Mode: first", "Cookie: session=s1\nX-Mode: later"]
--- response_body eval
[qq{id=alice userid=u-7 name=José "JJ" n=-1.50e3 admin=true roles=admin,dev,3 org={"b":1} nil=[]\n},
 qq{id=alice userid=u-7 name=José "JJ" n=-1.50e3 admin=true roles=admin,dev,3 org={"b":1} nil=[]\n}]
--- response_headers eval
["X-Status: MISS\nX-Claim-After: alice", "X-Status: HIT\nX-Claim-After: alice"]
--- no_error_log
[error]



=== TEST 2: an escaped key (the entry holds no index) is found on the hit
--- http_config
identity_cache_zone users:1m;
--- user_service
if ($http_x_mode = "later") { return 200 '{"user":"changed"}'; }
return 200 '{"us\\u0065r":"escaped","id":"alice"}';
--- api
identity_cache users;
identity_header X-User $identity_claim_user;
identity_header X-Id $identity_claim_id;
add_header X-Status $identity_status always;
--- backend
return 200 "user=$http_x_user id=$http_x_id\n";
--- request eval
["GET /api/1", "GET /api/2"]
--- more_headers eval
["Cookie: session=s2\nX-Mode: first", "Cookie: session=s2\nX-Mode: later"]
--- response_body eval
["user=escaped id=alice\n", "user=escaped id=alice\n"]
--- response_headers eval
["X-Status: MISS", "X-Status: HIT"]
--- no_error_log
[error]



=== TEST 3: more than 16 claims (the entry holds no index) are found on the hit
--- http_config
identity_cache_zone users:1m;
--- user_service
if ($http_x_mode = "later") { return 200 '{"k17":"changed"}'; }
return 200 '{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":"last"}';
--- api
identity_cache users;
identity_header X-K1 $identity_claim_k1;
identity_header X-K17 $identity_claim_k17;
add_header X-Status $identity_status always;
--- backend
return 200 "k1=$http_x_k1 k17=$http_x_k17\n";
--- request eval
["GET /api/1", "GET /api/2"]
--- more_headers eval
["Cookie: session=s3\nX-Mode: first", "Cookie: session=s3\nX-Mode: later"]
--- response_body eval
["k1=1 k17=last\n", "k1=1 k17=last\n"]
--- response_headers eval
["X-Status: MISS", "X-Status: HIT"]
--- no_error_log
[error]



=== TEST 4: a cached body that is not JSON fails its claims on the hit too
--- http_config
identity_cache_zone users:1m;
--- user_service
if ($http_x_mode = "later") { return 200 '{"id":"changed"}'; }
return 200 'not json';
--- api
identity_cache users;
identity_header X-Id $identity_claim_id;
add_header X-Status $identity_status always;
--- backend
return 200 "id=$http_x_id\n";
--- request eval
["GET /api/1", "GET /api/2"]
--- more_headers eval
["Cookie: session=s4\nX-Mode: first", "Cookie: session=s4\nX-Mode: later"]
--- error_code eval
[503, 503]
--- response_headers eval
["X-Status: ERROR", "X-Status: ERROR"]
--- error_log eval
[qr/identity_header "X-Id" uses \$identity_claim_\*, but the user service body is not valid JSON/]



=== TEST 5: a cached JSON body that is not an object fails its claims on the hit too
--- http_config
identity_cache_zone users:1m;
--- user_service
if ($http_x_mode = "later") { return 200 '{"id":"changed"}'; }
return 200 '["alice"]';
--- api
identity_cache users;
identity_header X-Id $identity_claim_id;
add_header X-Status $identity_status always;
--- backend
return 200 "id=$http_x_id\n";
--- request eval
["GET /api/1", "GET /api/2"]
--- more_headers eval
["Cookie: session=s5\nX-Mode: first", "Cookie: session=s5\nX-Mode: later"]
--- error_code eval
[503, 503]
--- response_headers eval
["X-Status: ERROR", "X-Status: ERROR"]
--- error_log eval
[qr/identity_header "X-Id" uses \$identity_claim_\*, but the user service body is JSON but not an object/]



=== TEST 6: a claim that decodes to CR LF is refused on the hit too
--- http_config
identity_cache_zone users:1m;
--- user_service
if ($http_x_mode = "later") { return 200 '{"id":"changed"}'; }
return 200 '{"id":"a\\r\\nX-Admin: 1"}';
--- api
identity_cache users;
identity_header X-Id $identity_claim_id;
add_header X-Status $identity_status always;
--- backend
return 200 "id=$http_x_id\n";
--- request eval
["GET /api/1", "GET /api/2"]
--- more_headers eval
["Cookie: session=s6\nX-Mode: first", "Cookie: session=s6\nX-Mode: later"]
--- error_code eval
[503, 503]
--- response_headers eval
["X-Status: ERROR", "X-Status: ERROR"]
--- error_log eval
[qr/identity_header "X-Id" value .*so it is not sent/]



=== TEST 7: a cached body that is not JSON serves a hit when no claim is read
--- http_config
identity_cache_zone users:1m;
--- user_service
if ($http_x_mode = "later") { return 200 'changed'; }
return 200 'plain text identity';
--- api
identity_cache users;
identity_header X-User $identity;
add_header X-Status $identity_status always;
--- backend
return 200 "user=$http_x_user\n";
--- request eval
["GET /api/1", "GET /api/2"]
--- more_headers eval
["Cookie: session=s7\nX-Mode: first", "Cookie: session=s7\nX-Mode: later"]
--- response_body eval
["user=plain text identity\n", "user=plain text identity\n"]
--- response_headers eval
["X-Status: MISS", "X-Status: HIT"]
--- no_error_log
[error]
