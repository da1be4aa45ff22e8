# ngx-identity: build, test and demo against Debian's nginx (/usr/sbin/nginx), or, with
# NGINX=vendored, against the newest stable nginx bundled with the nginx-src crate.
SHELL := /bin/bash
NGINX ?= /usr/sbin/nginx
CARGO ?= cargo

ifeq ($(NGINX),vendored)
# make ... NGINX=vendored: the cargo feature "vendored" builds nginx itself (nginx-src, in
# nginx-sys's OUT_DIR) and the module against it, in target/vendored; scripts/vendored.sh
# puts that nginx, the module and an echo module built for it under build/vendored.
# NGINX_BUILD_DIR must not be set: it would point nginx-sys at Debian's tree instead.
VENDORED := 1
# nginx reads an environment variable NGINX as sockets inherited from an old binary (and
# then stays in the foreground): "vendored" must not reach the nginx the tests start.
unexport NGINX
unexport NGINX_BUILD_DIR
# Debian's nginx is built --with-debug, and tests read debug-level lines from error.log.
export NGX_CONFIGURE_ARGS := --with-debug
export CARGO_TARGET_DIR := $(CURDIR)/target/vendored
CARGO_FEATURES := --features vendored
NGINX_BIN := $(CURDIR)/build/vendored/sbin/nginx
MODULE := $(CURDIR)/build/vendored/modules/ngx_http_identity_module.so
ECHO_MODULE := $(CURDIR)/build/vendored/modules/ngx_http_echo_module.so
NGINX_TREE :=
else
NGINX_BUILD_DIR := $(CURDIR)/build/nginx/objs
export NGINX_BUILD_DIR
CARGO_FEATURES :=
NGINX_BIN := $(NGINX)
MODULE := $(CURDIR)/build/modules/ngx_http_identity_module.so
ECHO_MODULE := /usr/lib/nginx/modules/ngx_http_echo_module.so
NGINX_TREE := $(NGINX_BUILD_DIR)/ngx_auto_config.h
endif

.PHONY: all deps module test check unit t run stop bench bench-instructions fuzz soak check-worker-kill check-valgrind clean deb test-deb

all: module

deps:
	@bash scripts/deps.sh

$(CURDIR)/build/nginx/objs/ngx_auto_config.h: | deps
	@bash scripts/nginx-build.sh >/dev/null

ifdef VENDORED
module: deps
	@CARGO="$(CARGO)" bash scripts/vendored.sh
else
module: deps $(NGINX_TREE)
	$(CARGO) build --release --locked
	@mkdir -p build/modules
	@# A new file, not an overwrite: a running nginx keeps its mapping of the old one.
	@cp target/release/libngx_http_identity_module.so $(MODULE).tmp && mv -f $(MODULE).tmp $(MODULE)
	@echo "module: $(MODULE)"
endif

# fmt and clippy with -D warnings, as CI wants them.
check: deps $(NGINX_TREE)
	$(CARGO) fmt --check
	$(CARGO) clippy --release --locked --all-targets $(CARGO_FEATURES) -- -D warnings

# Unit tests, then the Rust concurrency tests, which start their own nginx.
unit: module
	NGINX_BINARY=$(NGINX_BIN) IDENTITY_MODULE=$(MODULE) ECHO_MODULE=$(ECHO_MODULE) \
	$(CARGO) test --release --locked $(CARGO_FEATURES)

# The Test::Nginx suite against the real nginx binary, with the module loaded.
t: module
	TEST_NGINX_RANDOMIZE=1 TEST_NGINX_BINARY=$(NGINX_BIN) \
	TEST_NGINX_LOAD_MODULES="$(ECHO_MODULE) $(MODULE)" \
	prove -r t

test: check unit t

ifdef VENDORED
deb test-deb:
	@echo "make $@ packages the module for Debian's nginx; run it without NGINX=vendored" >&2; exit 1
else
# target/libnginx-mod-http-identity_<version>_<arch>.deb, laid out like Debian's own
# libnginx-mod-* packages (scripts/deb.sh, scripts/deb/).
deb: module
	@bash scripts/deb.sh

# Installs that package with apt, serves a request through Debian's nginx with it, purges
# it; leaves the machine as it found it (scripts/test-deb.sh).
test-deb: deb
	@bash scripts/test-deb.sh
endif

# Demo: Debian's nginx with nginx-conf/demo.conf (gateway, mock user service, mock
# business service on localhost).
run: module
	@NGINX_BINARY=$(NGINX_BIN) bash scripts/demo.sh start

stop:
	@NGINX_BINARY=$(NGINX_BIN) bash scripts/demo.sh stop

# One table of worker CPU per request and requests per second (scripts/bench), then the
# instructions per request beside it (BENCH_INSTRUCTIONS=0 leaves them out).
bench: module
	@bash scripts/bench
	@if [ "$${BENCH_INSTRUCTIONS:-1}" != 0 ]; then bash scripts/bench --instructions; fi

# User-space instructions per request under valgrind --tool=callgrind (floor, cache hit,
# sealed cookie): the deterministic figure beside make bench's timings.
bench-instructions: module
	@bash scripts/bench --instructions

# Propagation of a purge across a fleet of three gateways and one redis-server: p50/p99
# over 1,000 purges (scripts/bench-fleet explains the method).
.PHONY: bench-fleet
bench-fleet: module
	@NGINX_BINARY=$(NGINX_BIN) IDENTITY_MODULE=$(MODULE) python3 scripts/bench-fleet

# The t/ suite under valgrind memcheck (slow: every nginx runs under valgrind).
check-valgrind: module
	@bash scripts/check-valgrind.sh

# Faults, reloads, a million hits and workers SIGKILLed under load (scripts/soak).
soak: module
	@bash scripts/soak

# CI's short form of the worker-kill checks: the soak's phase alone for 10 s with a kill
# every 0.05 s, then the Rust test that kills workers every 50 ms under load for 20 s
# (it made the old spinlock hang every time).
check-worker-kill: module
	@SOAK_PHASES=kill KILL_SECONDS=$${KILL_SECONDS:-10} KILL_INTERVAL=$${KILL_INTERVAL:-0.05} bash scripts/soak
	NGINX_BINARY=$(NGINX_BIN) IDENTITY_MODULE=$(MODULE) ECHO_MODULE=$(ECHO_MODULE) WORKER_KILL_SECONDS=20 \
	$(CARGO) test --release --locked $(CARGO_FEATURES) --test cache_concurrency killed_workers -- --nocapture

# Every cargo-fuzz target briefly (FUZZ_SECONDS=600 for the long runs).
fuzz:
	@bash scripts/fuzz.sh

clean:
	rm -rf build target t/servroot*
