# mppd — build, run and test.
#
#   make build         bin/mppd and bin/mpp
#   make run           mppd with the development config (dev/mppd.toml)
#   make check         gofmt, vet, staticcheck, go.mod tidy
#   make unit          quick tests: no root, no services
#   make race          the quick tests under the race detector
#   sudo make test     everything CI runs: check, setup, unit, integration
#   make fuzz          every fuzz target for $(FUZZTIME)
#   make bench         benchmarks (Go, and mpp bench against a local mppd)
#   make install       into $(DESTDIR)$(PREFIX)
#   make packages      dist/*.deb and dist/*.rpm (nfpm, from tools/go.mod)
#   make cross         mpp built and vetted for every desktop (CGO off)
#   make release       dist/release: mpp for every desktop, the packages, SHA256SUMS
#   make lint-packages lintian, rpmlint, systemd-analyze on the packages
#   sudo make install-test  the .deb installed into a minimal Debian chroot
#   sudo make boot-test     the .deb under systemd as PID 1 in a booted Debian
#
# Nothing here needs more than GNU make and Go.

# Go: the one on PATH, else the standard install location (sudo's PATH
# usually lacks /usr/local/go/bin).
ifeq ($(origin GO),undefined)
GO := $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
endif
GOFMT = $(shell $(GO) env GOROOT)/bin/gofmt

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
DESTDIR    ?=

# safe.directory: under sudo, git refuses a repository owned by another
# user ("dubious ownership") unless told this one is fine.
# Versions are computed once, when make starts (":="): a commit made while
# a long target runs must not give its parts different versions.
ifndef VERSION
VERSION := $(shell git -c safe.directory='$(CURDIR)' describe --always --dirty 2>/dev/null || echo devel)
endif
LDFLAGS  = -X main.version=$(VERSION)

# Build tags: PAM support (cgo) when the libpam headers are installed.
# Deferred (=, not :=) so that a run after `make setup`, which installs
# them, sees them.
TAGS ?= $(shell test -e /usr/include/security/pam_appl.h && echo pam)

FUZZTIME ?= 30s

# The tag set of the integration run is fixed: the integration tests need
# PAM, and setup installs its headers.
INTEGRATION_TAGS = pam integration

.PHONY: all build run check lint-man unit race setup integration test fuzz bench cover install clean \
	packages lint-packages install-test boot-test cross release

all: build

build:
	$(GO) build -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o bin/ ./cmd/mppd ./cmd/mpp

# The development server: password file + maildir on 127.0.0.1:2525, as an
# ordinary user. Messages land in dev/maildir/<recipient>/new/.
run: build
	bin/mppd --config dev/mppd.toml

# The developer tools (nfpm, staticcheck) are pinned in their own module,
# tools/go.mod, so that their dependencies stay out of the daemon's go.mod.
# `go tool` builds them on first use; nothing needs to be installed.
TOOL = $(GO) tool -modfile=tools/go.mod

# Static checks: formatting; vet and staticcheck with and without the
# build tags (so both sides of every //go:build line are looked at); and
# that go.mod and go.sum are tidy (go mod tidy would change nothing).
check:
	@out="$$($(GOFMT) -l .)"; if [ -n "$$out" ]; then \
		echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags '$(strip $(TAGS) integration)' ./...
	$(TOOL) staticcheck ./...
	$(TOOL) staticcheck -tags '$(strip $(TAGS) integration)' ./...
	@set -e; for m in . tools; do \
		tmp=$$(mktemp -d); cp $$m/go.mod $$m/go.sum $$tmp/; \
		(cd $$m && $(GO) mod tidy); \
		if ! cmp -s $$tmp/go.mod $$m/go.mod || ! cmp -s $$tmp/go.sum $$m/go.sum; then \
			echo "go mod tidy changes $$m/go.mod or $$m/go.sum: run it and commit the result:"; \
			diff -u $$tmp/go.mod $$m/go.mod || true; \
			cp $$tmp/go.mod $$tmp/go.sum $$m/; rm -rf $$tmp; exit 1; fi; \
		rm -rf $$tmp; done
	@echo "go.mod and go.sum are tidy (., tools)"

# The man pages, checked by mandoc (installed by setup). Style remarks
# such as "referenced manual not found" are not failures.
lint-man:
	mandoc -Tlint -W warning man/*.[1-8]

unit:
	$(GO) test ./...

# The quick tests again under the race detector (cgo, so it needs gcc).
race:
	$(GO) test -race ./...

define require_root
	@if [ "$$(id -u)" -ne 0 ]; then \
		echo ""; \
		echo "*** make $@ must run as root: the integration tests need root, and"; \
		echo "*** setup installs packages, test users and services. Use: sudo make $@"; \
		echo ""; \
		exit 1; \
	fi
endef

setup:
	$(require_root)
	test/setup.sh

integration:
	$(require_root)
	$(GO) test -tags '$(INTEGRATION_TAGS)' -count=1 -p 1 ./...

# The whole suite, in this order; the README's test command and what CI
# runs. Sub-makes keep the order under -j.
test:
	$(require_root)
	$(MAKE) --no-print-directory check
	$(MAKE) --no-print-directory setup
	$(MAKE) --no-print-directory lint-man
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory race
	$(MAKE) --no-print-directory cross
	$(MAKE) --no-print-directory integration
	$(MAKE) --no-print-directory packages
	$(MAKE) --no-print-directory lint-packages
	$(MAKE) --no-print-directory install-test
	$(MAKE) --no-print-directory boot-test
	@echo "== make test: all passed"

# Each fuzz target, found with `go test -list`, for FUZZTIME. A failing
# input is written to testdata/fuzz/ by go test. test/fuzz.sh also says why
# a bare "context deadline exceeded" is not a failure on Go 1.26.
fuzz:
	GO='$(GO)' TAGS='$(TAGS)' FUZZTIME='$(FUZZTIME)' test/fuzz.sh

# The Go benchmarks, then test/bench.sh: `mpp bench` against a local mppd
# with the development backends (and, as root after setup, the floor of PAM
# + Postfix next to mppd with them), then test/bench-balancer.sh: HAProxy
# in front of two mppd against one mppd directly, then test/bench-ad.sh (as
# root after setup): mppd's LDAP logins against the test AD DC next to the
# DC's raw bind rate. BENCH_SECONDS sets each load run.
bench: build
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchmem ./...
	$(GO) build -tags '$(TAGS)' -o bin/ ./test/benchfloor ./test/benchad ./test/benchbare
	test/bench.sh bin
	test/bench-balancer.sh bin
	test/bench-ad.sh bin

cover:
	$(GO) test -coverprofile=coverage.out ./...
	$(GO) tool cover -func=coverage.out | tail -1

# Binaries, the man pages in man/, and the sample config (never over an
# existing one), mode 0644 like the packages' (it holds no secret).
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/mppd
	install -m 0755 bin/mpp $(DESTDIR)$(BINDIR)/mpp
	install -m 0755 bin/mppd $(DESTDIR)$(SBINDIR)/mppd
	@set -e; for page in $(wildcard man/*.[1-8]); do \
		sect=$${page##*.}; \
		install -d $(DESTDIR)$(MANDIR)/man$$sect; \
		echo install -m 0644 $$page $(DESTDIR)$(MANDIR)/man$$sect/; \
		install -m 0644 $$page $(DESTDIR)$(MANDIR)/man$$sect/; \
	done
	test -e $(DESTDIR)$(SYSCONFDIR)/mppd/mppd.toml || \
		install -m 0644 packaging/mppd.toml $(DESTDIR)$(SYSCONFDIR)/mppd/mppd.toml

# --- Packages ------------------------------------------------------------
# .deb and .rpm from the tree, by nfpm (pinned in tools/go.mod's tool
# block, so it needs nothing installed). The binaries are built for the
# packages: PAM (cgo), position-independent, stripped (the packages ship no
# debug symbols), with the package version. Man pages are gzipped with -n
# (no name or time stamp inside), the copyright file is generated from the
# modules actually compiled in. Needs the libpam headers (make setup).
PKG_ARCH       ?= $(shell $(GO) env GOARCH)
ifndef PKG_VERSION
PKG_VERSION    := $(shell packaging/version.sh)
endif
PKG_RELEASE     = 1
PKG_MAINTAINER  = mppd authors <mppd@example.org>
PKG_BUILD       = dist/build
# The Debian suite the install test installs the .deb into.
PKG_SUITE      ?= bookworm
NFPM            = $(TOOL) nfpm

packages:
	rm -rf $(PKG_BUILD) dist/*.deb dist/*.rpm
	mkdir -p $(PKG_BUILD)/man
	CGO_ENABLED=1 GOARCH=$(PKG_ARCH) $(GO) build -trimpath -buildmode=pie -tags pam \
		-ldflags '-s -w -linkmode=external -extldflags=-Wl,-z,relro,-z,now -X main.version=$(PKG_VERSION)' -o $(PKG_BUILD)/ ./cmd/mppd ./cmd/mpp
	@set -e; for page in man/*.[1-8]; do \
		gzip -9n -c $$page >$(PKG_BUILD)/man/$${page#man/}.gz; done
	packaging/copyright.sh '$(GO)' -tags pam ./cmd/mppd ./cmd/mpp >$(PKG_BUILD)/copyright
	packaging/changelog.sh '$(PKG_VERSION)-$(PKG_RELEASE)' '$(PKG_MAINTAINER)' | gzip -9n >$(PKG_BUILD)/changelog.Debian.gz
	@set -e; for p in deb rpm; do \
		echo "nfpm package --packager $$p"; \
		VERSION='$(PKG_VERSION)' ARCH='$(PKG_ARCH)' \
			$(NFPM) package --config packaging/nfpm.yaml --packager $$p --target dist/; \
	done
	@ls -l dist/*.deb dist/*.rpm

# The checks on what `make packages` built: lintian (errors and warnings
# fail; the ones we accept are overridden in packaging/lintian-overrides
# with the reason), rpmlint (packaging/rpmlint.toml, likewise), and
# systemd-analyze on the units: verify, and the exposure score of the
# sandbox, which must stay at or below PKG_MAX_EXPOSURE (mppd(8), SECURITY,
# records it). verify checks that ExecStart= exists, so it looks at copies
# of the units pointing at the binary just built.
PKG_MAX_EXPOSURE = 3.0
lint-packages:
	lintian --fail-on error,warning --display-info --tag-display-limit 0 dist/*.deb
	rpmlint --config packaging/rpmlint.toml dist/*.rpm
	test/packaging/verify-units.sh $(PKG_BUILD)/mppd $(PKG_MAX_EXPOSURE)

# Installs the .deb into a fresh minimal Debian (debootstrap, cached under
# /var/cache/mppd-test) and checks files, conffile, config check, man pages,
# removal and purge; checks the .rpm's file list and scriptlets with rpm.
install-test:
	$(require_root)
	test/packaging/install-test.sh $(PKG_SUITE) dist/*.deb dist/*.rpm

# Boots a Debian (systemd-nspawn, systemd as PID 1, private network; the
# bootable root cached next to the install test's base) and, inside it,
# installs the .deb and Postfix with apt and runs what an administrator
# does: activation, posting through PAM and sendmail, reload, stop and
# upgrade during DATA, the procedures of mppd(8) ADMINISTRATION, remove and
# purge. About two minutes with the root cached.
boot-test:
	$(require_root)
	test/packaging/boot-test.sh $(PKG_SUITE) dist/*.deb

# --- Every desktop -------------------------------------------------------
# The client, mpp, is pure Go: built with CGO off for each operating system
# and architecture a workstation runs, and go vet run on the client's
# packages for each GOOS (the build tags and GOOS switches of each side get
# looked at). mppd itself is Unix only, and cmd/mpp's tests serve it
# in-process: for Windows, cmd/mpp is vetted without its test files.
CROSS_TARGETS = linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
CROSS_VET     = ./internal/mppclient/... ./internal/mppqueue

cross:
	@set -e; for t in $(CROSS_TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; \
		echo "cross: mpp for $$os/$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -o /dev/null ./cmd/mpp; \
	done
	@set -e; for os in $(sort $(foreach t,$(CROSS_TARGETS),$(firstword $(subst /, ,$(t))))); do \
		echo "cross: go vet for $$os"; \
		CGO_ENABLED=0 GOOS=$$os $(GO) vet $(CROSS_VET); \
		if [ $$os = windows ]; then \
			CGO_ENABLED=0 GOOS=$$os $(GO) vet $$(GOOS=$$os $(GO) list -f '{{range .GoFiles}}{{$$.Dir}}/{{.}} {{end}}' ./cmd/mpp); \
		else \
			CGO_ENABLED=0 GOOS=$$os $(GO) vet ./cmd/mpp; \
		fi; \
	done

# What a release ships, in dist/release: mpp for every CROSS_TARGETS entry
# (stripped, -trimpath, the package version), the .deb and .rpm of
# `make packages`, and SHA256SUMS over all of them.
release: packages
	rm -rf dist/release
	mkdir -p dist/release
	@set -e; for t in $(CROSS_TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		out=dist/release/mpp-$(PKG_VERSION)-$$os-$$arch$$ext; \
		echo "release: $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath \
			-ldflags '-s -w -X main.version=$(PKG_VERSION)' -o $$out ./cmd/mpp; \
	done
	cp dist/*.deb dist/*.rpm dist/release/
	cd dist/release && sha256sum -- * >SHA256SUMS
	cat dist/release/SHA256SUMS

clean:
	rm -rf bin dist coverage.out coverage.html
