# What t/002-t/008 share: a mock user service, the gateway each block starts from, and
# a filter for header dumps. A test file says
#
#     use lib 't/lib';
#     use Identity;
#     identity_blocks();    # or with backend => ... or more_headers => ..., see below
#
# and its blocks then hold only what is their own:
#
#   --- user_service   what the mock user service's "location /user" does; the service
#                      (a random port, $TEST_NGINX_RAND_PORT_1) runs only for the blocks that have this section,
#                      and a block's own --- http_config goes after it; without it,
#                      /_identity asks $TEST_NGINX_RAND_PORT_9, where nothing listens
#   --- identity       directives added to "location = /_identity", where the identity
#                      subrequest goes
#   --- api            directives added to "location /api/", which already has
#                      "identity_request /_identity" and passes the request on to /backend
#   --- backend        what "location /backend", the business service, does, when not the
#                      file's default ("business reached", or identity_blocks' backend)
#   --- extra_config   more lines for the server: other locations, server-level directives
#   --- config         the server's whole config, instead of all of the above but the
#                      user service
#   --- request        "GET /api/x" unless the block sends something else
#   --- more_headers   identity_blocks' more_headers, if any, unless the block has its own
#
# and a block that must_die keeps nginx's complaint off the terminal.
package Identity;
use strict;
use warnings;
use Exporter 'import';
use Test::Nginx::Socket ();

our @EXPORT = qw(identity_blocks header_lines);

# The module strips every header name it protects anywhere in a server{} from every
# request of that server (t/041-subrequests.t), so a business service that must see
# the identity headers cannot be a location of the gateway's own server. Every file
# that uses this module gets this preprocessor, run after the file's own: a block's
# "location /backend { ... }" moves to a server of its own on $TEST_NGINX_RAND_PORT_8,
# and "$server_port/backend" points there.
Test::Nginx::Socket::add_block_preprocessor(sub {
    my $block = shift;
    my $config = $block->config;
    return unless defined $config;
    my $brace = qr/(\{(?:[^{}]++|(?-1))*\})/;
    my @backends;
    $config =~ s{^[ \t]*location /backend\s*$brace[ \t]*\n?}{push @backends, "location /backend $1"; ""}mge;
    return unless @backends;
    # An empty variable keeps proxy_pass's URI as written (no prefix replacement), as
    # $server_port did.
    $config =~ s{(127\.0\.0\.1:)\$server_port/backend}{$1\$TEST_NGINX_RAND_PORT_8/backend\$identity_test_empty}g;
    $block->set_value("config", $config);
    $block->set_value("http_config", ($block->http_config // "")
        . "    map \$uri \$identity_test_empty { default \"\"; }\n"
        . "    server {\n        listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_8;\n        identity_request off;\n        "
        . join("\n        ", @backends) . "\n    }\n");
});

my $UserService = <<'_EOC_';
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location /user {
%s
        }
    }
_EOC_

my $Gateway = <<'_EOC_';
    location = /_identity {
        internal;
%s
        proxy_pass http://127.0.0.1:%s/user;
    }
    location /api/ {
        identity_request /_identity;
%s
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
%s
    }
_EOC_

sub identity_blocks {
    my %default = (backend => 'return 200 "business reached\n";', @_);
    Test::Nginx::Socket::add_block_preprocessor(sub {
        my $block = shift;
        my $answer = $block->user_service;
        if (defined $answer) {
            $block->set_value("http_config",
                sprintf($UserService, $answer) . ($block->http_config // ""));
        }
        if (!defined $block->config) {
            $block->set_value("config",
                sprintf($Gateway, $block->identity // "", defined $answer ? '$TEST_NGINX_RAND_PORT_1' : '$TEST_NGINX_RAND_PORT_9',
                        $block->api // "", $block->backend // $default{backend})
                . ($block->extra_config // ""));
        }
        if (!grep { defined $block->$_ } qw(request raw_request pipelined_requests)) {
            $block->set_value("request", "GET /api/x");
        }
        if (defined $default{more_headers} && !defined $block->more_headers) {
            $block->set_value("more_headers", $default{more_headers});
        }
        if (defined $block->must_die) {
            $block->set_value("suppress_stderr", "");
        }
    });
}

# For --- response_body_filters eval: keeps the lines of a raw header dump
# ($echo_client_request_headers) whose header name matches the pattern
# (case-insensitively), without their CR, in order.
sub header_lines {
    my $names = shift;
    return sub { join "", map { s/\r//r } grep { /^(?:$names):/i } split /^/m, shift };
}

1;
