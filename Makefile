# ngx-identity: build, test and demo against Debian's nginx (/usr/sbin/nginx).
SHELL := /bin/bash
NGINX ?= /usr/sbin/nginx
NGINX_BUILD_DIR := $(CURDIR)/build/nginx/objs
export NGINX_BUILD_DIR
MODULE := $(CURDIR)/build/modules/ngx_http_identity_module.so
ECHO_MODULE := /usr/lib/nginx/modules/ngx_http_echo_module.so
CARGO ?= cargo

.PHONY: all deps module test check unit t run stop bench fuzz soak check-valgrind clean

all: module

deps:
	@bash scripts/deps.sh

$(NGINX_BUILD_DIR)/ngx_auto_config.h: | deps
	@bash scripts/nginx-build.sh >/dev/null

module: deps $(NGINX_BUILD_DIR)/ngx_auto_config.h
	$(CARGO) build --release --locked
	@mkdir -p build/modules
	@# A new file, not an overwrite: a running nginx keeps its mapping of the old one.
	@cp target/release/libngx_http_identity_module.so $(MODULE).tmp && mv -f $(MODULE).tmp $(MODULE)
	@echo "module: $(MODULE)"

# fmt and clippy with -D warnings, as CI wants them.
check: deps $(NGINX_BUILD_DIR)/ngx_auto_config.h
	$(CARGO) fmt --check
	$(CARGO) clippy --release --locked --all-targets -- -D warnings

# Unit tests, then the Rust concurrency tests, which start their own nginx.
unit: module
	NGINX_BINARY=$(NGINX) IDENTITY_MODULE=$(MODULE) ECHO_MODULE=$(ECHO_MODULE) \
	$(CARGO) test --release --locked

# The Test::Nginx suite against the real nginx binary, with the module loaded.
t: module
	TEST_NGINX_BINARY=$(NGINX) \
	TEST_NGINX_LOAD_MODULES="$(ECHO_MODULE) $(MODULE)" \
	prove -r t

test: check unit t

# target/libnginx-mod-http-identity_<version>_<arch>.deb, laid out like Debian's own
# libnginx-mod-* packages (scripts/deb.sh, scripts/deb/).
deb: module
	@bash scripts/deb.sh

# Installs that package with apt, serves a request through Debian's nginx with it, purges
# it; leaves the machine as it found it (scripts/test-deb.sh).
test-deb: deb
	@bash scripts/test-deb.sh

# Demo: Debian's nginx with nginx-conf/demo.conf (gateway, mock user service, mock
# business service on localhost).
run: module
	@bash scripts/demo.sh start

stop:
	@bash scripts/demo.sh stop

# One table of worker CPU per request and requests per second (scripts/bench).
bench: module
	@bash scripts/bench

# Every cargo-fuzz target briefly (FUZZ_SECONDS=600 for the long runs).
fuzz:
	@bash scripts/fuzz.sh

clean:
	rm -rf build target t/servroot*
