# mod_tls — build, demo, tests and apxs-style installation.
#
#   make demo      build and serve https://127.0.0.1:8443/ (DEMO_PORT=... to change)
#   make test      unit + integration tests against the real httpd (what CI runs)
#   make install   install mod_tls.so with apxs, and mod_tls-migrate; DESTDIR is honoured
#   make deb       build the Debian package libapache2-mod-tls-rs into target/debian/
#   make soak      mixed TLS load with graceful restarts for SOAK_MINUTES (5); not part of make test
#
# Missing Debian packages are installed first: what building and serving need for build, install
# and demo; packaging tools for deb; every test tool for test (scripts/ensure-deps.sh).

CARGO   ?= cargo
APXS    ?= apxs
export APXS

# The C part of the build (aws-lc) gets Debian's build flags (hardening), as dpkg-buildpackage
# sets them for `make deb`. With the same flags everywhere, `make build`, `make demo`, `make
# install` and `make deb` share one release build: with different ones, each rebuilt aws-lc and
# everything above it (1-3 minutes) after another had run.
ifneq ($(shell command -v dpkg-buildflags 2>/dev/null),)
export CFLAGS   := $(shell dpkg-buildflags --get CFLAGS)
export CXXFLAGS := $(shell dpkg-buildflags --get CXXFLAGS)
export CPPFLAGS := $(shell dpkg-buildflags --get CPPFLAGS)
export LDFLAGS  := $(shell dpkg-buildflags --get LDFLAGS)
endif
# dpkg-buildpackage sets it from debian/changelog (reproducible builds); aws-lc's build reads it.
ifneq ($(shell command -v dpkg-parsechangelog 2>/dev/null),)
export SOURCE_DATE_EPOCH := $(shell dpkg-parsechangelog -STimestamp 2>/dev/null)
endif

.PHONY: all deps deps-deb deps-test deps-bench build debug test lint demo install deb bench bench-vhosts bench-floor leakcheck soak valgrind clean

all: build

deps:
	@scripts/ensure-deps.sh build

deps-deb:
	@scripts/ensure-deps.sh deb

deps-test:
	@scripts/ensure-deps.sh test

deps-bench:
	@scripts/ensure-deps.sh bench

build: deps
	$(CARGO) build --release --locked --workspace
	cp target/release/libmod_tls.so target/release/mod_tls.so

debug: deps
	$(CARGO) build --locked --workspace

# The integration tests load target/test-hooks/debug/libmod_tls.so into /usr/sbin/apache2, built
# with the test-only switches (feature test-hooks) that release builds never have. That build has
# its own target directory, so that it and `make debug` (without them) never rebuild each other.
TEST_FEATURES = --features test-hooks
TEST_CARGO    = $(CARGO) --locked
TEST_TARGET   = --target-dir target/test-hooks

lint: deps
	$(CARGO) fmt --all --check
	$(TEST_CARGO) clippy --workspace --all-targets $(TEST_FEATURES) $(TEST_TARGET) -- -D warnings

# Unit tests of every crate and the integration tests against the real httpd. The package test
# (tests/package.rs) checks the .deb that `make deb` leaves in target/debian/.
test: deps-test deb
	$(TEST_CARGO) build --workspace $(TEST_FEATURES) $(TEST_TARGET)
	$(TEST_CARGO) test --workspace $(TEST_FEATURES) $(TEST_TARGET)
	$(MAKE) --no-print-directory lint

demo: build
	scripts/demo.sh target/release/libmod_tls.so

LIBEXECDIR = $(shell $(APXS) -q LIBEXECDIR)
BINDIR     = $(shell $(APXS) -q BINDIR)
MANDIR     = $(shell $(APXS) -q MANDIR)

# The module (with apxs) and mod_tls-migrate, the mod_ssl configuration converter, with its man page.
install: build
	install -d "$(DESTDIR)$(LIBEXECDIR)"
	$(APXS) -i -S LIBEXECDIR="$(DESTDIR)$(LIBEXECDIR)" -n tls target/release/mod_tls.so
	install -D -m 755 target/release/mod_tls-migrate "$(DESTDIR)$(BINDIR)/mod_tls-migrate"
	install -D -m 644 man/mod_tls-migrate.1 "$(DESTDIR)$(MANDIR)/man1/mod_tls-migrate.1"

# The Debian package, as Debian's own module packages are built (debian/: dh with dh_apache2).
# dpkg-buildpackage writes next to the source tree; the results are moved to target/debian/.
# -d: the Rust toolchain comes from rustup, which dpkg does not know about.
DEB_VERSION = $(shell dpkg-parsechangelog -S Version 2>/dev/null)
DEB_ARCH    = $(shell dpkg --print-architecture)
DEB_BASE    = libapache2-mod-tls-rs_$(DEB_VERSION)_$(DEB_ARCH)
deb: deps-deb
	@test "$(DEB_VERSION)" = "$$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)" || \
		{ echo "error: debian/changelog's version $(DEB_VERSION) is not Cargo.toml's: add a changelog entry" >&2; exit 1; }
	dpkg-buildpackage -b -d -us -uc
	rm -rf target/debian && mkdir -p target/debian
	mv ../$(DEB_BASE).deb ../$(DEB_BASE).buildinfo ../$(DEB_BASE).changes target/debian/

# Side-by-side comparison with mod_ssl and plain httpd (../shared/bench/tlsbench; ~7 min).
TLSBENCH ?= ../shared/bench/tlsbench
bench: build
	$(TLSBENCH) plain ssl tls=target/release/libmod_tls.so

# VHOSTS name-based TLS vhosts (2000; up to 10000), each its own ECDSA certificate (made once, cached
# in /tmp/mod_tls-bench-vhosts-certs): mod_ssl, mod_tls and plain httpd side by side; -t, start,
# graceful restart, PSS per vhost, handshake rate first/last vhost (scripts/bench_vhosts.py; ~3 min).
VHOSTS ?= 2000
bench-vhosts: build
	scripts/bench_vhosts.py --vhosts $(VHOSTS)

# The handshake against its floor: a minimal rustls server (examples/rustls_floor.rs) with and
# without TLS, and httpd with and without mod_tls, in one run; prints "TLS minus plain" for both
# (servers on one CPU, h2load on another; NO_PIN=1 lets them share; INSTRUCTIONS=1 counts
# instructions with callgrind instead of CPU time).
bench-floor: build deps-bench
	$(CARGO) build --release --locked --example rustls_floor
	scripts/bench_floor.py $(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(MPM),--mpm $(MPM)) $(foreach a,$(ALSO),--also $(a)) \
		$(if $(filter 1 yes,$(INSTRUCTIONS)),--instructions) $(if $(filter 1 yes,$(NO_PIN)),--no-pin)

# 10,000 handshakes with abrupt closes; fails if memory or open files grow.
leakcheck: build
	scripts/leakcheck.py target/release/libmod_tls.so -n 10000

# Mixed load (h2load HTTP/1.1 and HTTP/2, resumption, client certificates, proxy, abrupt closes,
# stalled handshakes, garbage) with a graceful restart every 30 s; fails on any failed request or crash.
SOAK_MINUTES ?= 5
soak: build
	scripts/soak.py target/release/libmod_tls.so --minutes $(SOAK_MINUTES)

# httpd -X under valgrind memcheck with the debug build.
valgrind: debug
	scripts/valgrind.sh target/debug/libmod_tls.so

clean:
	$(CARGO) clean
