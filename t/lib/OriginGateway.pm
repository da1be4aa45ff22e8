package OriginGateway;
# nginx-conf/gateway.conf (the origin gateway's configuration with this module) under
# Test::Nginx, with mocks of the origin's user and business services (t/lib/
# origin_user_service.py, t/lib/origin_business_service.py) on free ports.
#
#   use lib 't/lib';
#   use OriginGateway qw(free_port start_mock gateway_http_config);
#   my $user = start_mock('origin_user_service.py');
#   my $business = start_mock('origin_business_service.py');
#   our $HttpConfig = gateway_http_config($user, $business);
#
# gateway_http_config returns the file's text for `--- http_config` with only what ties
# it to a deployment replaced: the upstreams' `server user:8101` and `server
# business:8102` become the mocks' ports, `listen 8100` becomes `listen
# $TEST_NGINX_SERVER_PORT` (Test::Nginx fills it in), and the cors.conf include points at
# nginx-conf/cors.conf. Everything else is the file as shipped; it dies when one of those
# lines is missing, so the test always runs the real file. The gateway's server{} comes
# before Test::Nginx's own (server_name localhost) on the same port, so it is the default
# server: a request reaches it with any Host but `localhost` (e.g. `--- more_headers`
# `Host: gateway`, or a client connecting to 127.0.0.1:$TEST_NGINX_SERVER_PORT).
# For "the user service is down", pass free_port() (nothing listens there) as the user port.
use strict;
use warnings;
use Cwd qw(getcwd);
use IO::Socket::INET;
use Exporter 'import';
our @EXPORT_OK = qw(free_port start_mock gateway_http_config);

# A port nothing listens on now (bound, read, released).
sub free_port {
    my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1)
        or die "no free port: $!";
    my $port = $probe->sockport;
    close $probe;
    return $port;
}

# Starts t/lib/SCRIPT on a free port, detached; it exits with this test process. Returns
# the port once the mock accepts connections.
sub start_mock {
    my ($script) = @_;
    my $port = free_port();
    system("python3 t/lib/$script $port $$ </dev/null >/dev/null 2>&1 &") == 0
        or die "cannot start t/lib/$script";
    for (1 .. 200) {
        return $port if IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port);
        select(undef, undef, undef, 0.05);
    }
    die "t/lib/$script did not start on port $port";
}

sub gateway_http_config {
    my ($user_port, $business_port) = @_;
    my $file = 'nginx-conf/gateway.conf';
    open my $fh, '<', $file or die "$file: $!";
    my $conf = do { local $/; <$fh> };
    close $fh;
    my $cors = getcwd() . '/nginx-conf/cors.conf';
    my @edits = (
        [qr/\bserver user:8101;/, "server 127.0.0.1:$user_port;"],
        [qr/\bserver business:8102;/, "server 127.0.0.1:$business_port;"],
        [qr/\blisten 8100;/, 'listen $TEST_NGINX_SERVER_PORT;'],
        [qr{include /etc/nginx/conf\.d/cors\.conf;}, "include $cors;"],
    );
    for my $edit (@edits) {
        my ($from, $to) = @$edit;
        my $n = () = $conf =~ /$from/g;
        die "$file: no line matches $from" if $n == 0;
        $conf =~ s/$from/$to/g;
    }
    return $conf;
}

1;
