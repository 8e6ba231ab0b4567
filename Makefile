# vigil — see README.md. `make run` and `make test` are the two commands of the quick start.

SWIFT        ?= swift
VENV         := .venv
PYTHON       := $(VENV)/bin/python
PREFIX       ?= /usr/local
DESTDIR      ?=
# The binary `make install` installs; built (release, static Swift runtime) unless given.
BINARY       ?=
# Where the installed alert rules' runbook_url annotations point (each alert's anchor is added):
# the installed docs by default; a fleet gives its own page (RUNBOOK_URL=https://wiki.example/vigil).
RUNBOOK_URL  ?= file://$(PREFIX)/share/doc/vigil/docs/alerts.md
# The runbook URL as written in monitoring/vigil-alerts.yml, replaced on install.
SHIPPED_RUNBOOK_URL := file:///usr/local/share/doc/vigil/docs/alerts.md
VIGILCTL_BIN = $(dir $(or $(BINARY),$(RELEASE_BIN)))vigilctl
RELEASE_BIN  := .build/release/vigild
# Packages each target needs on a fresh Debian 12 with Swift (check:package).
BUILD_PACKAGES := "command -v git:git" "command -v pkg-config:pkg-config" "pkg-config --exists libsystemd:libsystemd-dev" \
                  "test -f /usr/include/zlib.h:zlib1g-dev"
TEST_PACKAGES  := "command -v python3:python3" "python3 -c 'import ensurepip':python3-venv" \
                  "command -v systemd-nspawn:systemd-container" "command -v unshare:util-linux" \
                  "test -x /lib/systemd/systemd-journald:systemd" "command -v ip:iproute2" \
                  "command -v iptables:iptables" "command -v tmux:tmux" \
                  "command -v zsh:zsh" "command -v fish:fish" \
                  "command -v promtool:prometheus" "test -x /lib/systemd/systemd-journal-remote:systemd-journal-remote"
GO_PACKAGES    := "command -v go:golang-go" \
                  "test -d /usr/share/gocode/src/github.com/gorilla/websocket:golang-github-gorilla-websocket-dev" \
                  "test -d /usr/share/gocode/src/golang.org/x/net/websocket:golang-golang-x-net-dev"
# The real browser the Origin test (and the status page's) drive over the DevTools protocol.
BROWSER_PACKAGES := "test -x /usr/lib/chromium/chromium:chromium"
# The proxies the proxy benchmark compares vigild's proxy mode with.
PROXY_PACKAGES := "test -x /usr/sbin/nginx:nginx" "test -x /usr/sbin/haproxy:haproxy" "test -x /usr/bin/caddy:caddy"
# The load balancers the black-box suite puts in front of vigild (deploy/): HAProxy, and nginx
# with its stream module (Debian ships it apart).
BALANCER_PACKAGES := "test -x /usr/sbin/nginx:nginx" "test -x /usr/sbin/haproxy:haproxy" \
                     "test -f /usr/lib/nginx/modules/ngx_stream_module.so:libnginx-mod-stream"
BASELINE       := .build-go/baseline-gorilla
LOAD_GO        := .build-go/load-gorilla
SEED_CLIENT    := .build-go/seed-client
GORILLA_DEFLATE := .build-go/gorilla-deflate-client
MALLOC_COUNT   := .build-go/libmalloc_count.so
GO_ENV         := GOPATH=$(CURDIR)/.build-go/path GOCACHE=$(CURDIR)/.build-go/cache GOPROXY=off GOFLAGS=-mod=mod

.PHONY: run build release release-load test lint format unit-test blackbox-test conformance conformance-full venv bench baseline fuzz fuzz-build fuzz-campaign sanitize install uninstall clean

## run: build a release vigild and run it on its embedded defaults (ws://127.0.0.1:8080/ws, status on :9090)
run: release
	$(RELEASE_BIN)

# Release builds skip Swift's run-time exclusivity checks: they were a fifth of the instructions
# a relayed message cost (callgrind, proxy 10 x 64 B echo: 25,019 -> 19,555 per relayed message,
# most of them in NIO's own accessors). Debug builds (make test's unit and black-box runs) and
# the sanitizer and fuzz builds keep them, so a violation is still caught there.
RELEASE_FLAGS := -c release --static-swift-stdlib -Xswiftc -enforce-exclusivity=unchecked

## release: an optimised vigild with the Swift runtime linked in (no toolchain needed to run it)
release:
	@scripts/ensure-packages.sh $(BUILD_PACKAGES)
	$(SWIFT) build $(RELEASE_FLAGS) --product vigild
	$(SWIFT) build $(RELEASE_FLAGS) --product vigilctl

build:
	@scripts/ensure-packages.sh $(BUILD_PACKAGES)
	$(SWIFT) build --build-tests

## test: the formatting check, Swift unit and pipeline tests, the black-box suite against the
## real vigild binary, and Autobahn|Testsuite's conformance run
test: lint unit-test blackbox-test conformance

# The Swift files .swift-format covers (4 spaces, lines of at most 120 columns).
FORMATTED := Sources Tests Package.swift Fuzz/Sources Fuzz/Package.swift

## format: apply .swift-format to every Swift file
format:
	$(SWIFT) format format --in-place --recursive --parallel $(FORMATTED)

## lint: fail, naming file and line, on any Swift file that .swift-format would change
lint:
	$(SWIFT) format lint --strict --recursive --parallel $(FORMATTED)

unit-test: build
	$(SWIFT) test --skip-build

blackbox-test: build venv baseline $(SEED_CLIENT) $(GORILLA_DEFLATE)
	@scripts/ensure-packages.sh $(BROWSER_PACKAGES) $(BALANCER_PACKAGES)
	VIGILD=$(CURDIR)/.build/debug/vigild $(PYTHON) -m pytest -q Tests/blackbox

## conformance: Autobahn|Testsuite against both sides and the proxy (the fuzzingclient against
## vigild in echo mode and in proxy mode, the fuzzingserver against vigil-load --echo-peer --deflate),
## every group, of 12 and 13 (permessage-deflate) the cases up to 16 KiB; optimised binaries
## conformance-full: the same with every case of 12 and 13 (messages up to 128 KiB; about 30 minutes)
conformance: release-load venv
	$(PYTHON) Tests/conformance/run_autobahn.py $(CURDIR)/$(RELEASE_BIN) $(CURDIR)/.build/release/vigil-load

conformance-full: release-load venv
	$(PYTHON) Tests/conformance/run_autobahn.py $(CURDIR)/$(RELEASE_BIN) $(CURDIR)/.build/release/vigil-load --full

# vigild and vigil-load optimised, as they ship: Autobahn's compression cases move about 1 GiB
# per side, which unoptimised frame unmasking takes minutes over.
release-load: release
	$(SWIFT) build $(RELEASE_FLAGS) --product vigil-load

venv: $(VENV)/.installed

$(VENV)/.installed: Tests/blackbox/requirements.txt
	@scripts/ensure-packages.sh $(TEST_PACKAGES)
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r Tests/blackbox/requirements.txt
	touch $@

## bench: vigild against the gorilla baseline side by side, and its proxy mode against nginx, HAProxy
## and Caddy; writes BENCHMARKS.md and its plot.
## bench QUICK=1: small sizes, report under out/ (CI runs it: the scenarios ran and gave numbers)
bench: release-load baseline $(LOAD_GO) $(MALLOC_COUNT) venv
	@scripts/ensure-packages.sh $(PROXY_PACKAGES) "command -v strace:strace" "command -v callgrind_control:valgrind" \
		"command -v objcopy:binutils"
	$(PYTHON) -m pip install -q --disable-pip-version-check -r Benchmarks/requirements.txt
	$(PYTHON) Benchmarks/bench.py --vigild $(RELEASE_BIN) --load .build/release/vigil-load --baseline $(BASELINE) \
		--load-go $(LOAD_GO) --malloc-count $(MALLOC_COUNT) \
		$(if $(QUICK),--quick --out out/bench-quick/BENCHMARKS.md --plots out/bench-quick,--out BENCHMARKS.md --plots docs/benchmarks)

## baseline: the gorilla/websocket server the benchmarks compare against (Go and gorilla from Debian)
baseline: $(BASELINE)

$(BASELINE): Benchmarks/baseline-gorilla/main.go Benchmarks/baseline-gorilla/go.mod
	@scripts/ensure-packages.sh $(GO_PACKAGES)
	cd Benchmarks/baseline-gorilla && $(GO_ENV) go build -o $(CURDIR)/$(BASELINE) .

# The independent load generator the heartbeat is timed with too (Go, gorilla/websocket).
$(LOAD_GO): Benchmarks/load-gorilla/main.go Benchmarks/load-gorilla/go.mod
	@scripts/ensure-packages.sh $(GO_PACKAGES)
	cd Benchmarks/load-gorilla && $(GO_ENV) go build -o $(CURDIR)/$(LOAD_GO) .

# The client from vigil's source document (Go, golang.org/x/net/websocket), for the black-box suite.
$(SEED_CLIENT): Tests/blackbox/seed-client/main.go Tests/blackbox/seed-client/go.mod
	@scripts/ensure-packages.sh $(GO_PACKAGES)
	cd Tests/blackbox/seed-client && $(GO_ENV) go build -o $(CURDIR)/$(SEED_CLIENT) .

# gorilla/websocket with compression on, a permessage-deflate peer for the black-box suite.
$(GORILLA_DEFLATE): Tests/blackbox/gorilla-deflate-client/main.go Tests/blackbox/gorilla-deflate-client/go.mod
	@scripts/ensure-packages.sh $(GO_PACKAGES)
	cd Tests/blackbox/gorilla-deflate-client && $(GO_ENV) go build -o $(CURDIR)/$(GORILLA_DEFLATE) .

# The LD_PRELOAD heap allocation counter (counts per round trip and per echoed message).
$(MALLOC_COUNT): Benchmarks/malloc-count/malloc_count.c
	@scripts/ensure-packages.sh "command -v cc:gcc"
	@mkdir -p $(dir $@)
	cc -O2 -Wall -Wextra -shared -fPIC -o $@ $<

## fuzz SECONDS=N: the libFuzzer targets (framing core and shell in both roles; a whole server
## connection; both legs of a proxied pair and the relay), each for N seconds (default 60),
## optimised without AddressSanitizer, after replaying Fuzz/regressions through their debug
## AddressSanitizer builds; prints inputs a second and coverage, then replays every input the
## run kept through the debug AddressSanitizer build
## fuzz-campaign HOURS=N: every target under AddressSanitizer for an equal share of N hours on every core, the corpus
## merged and minimised into Fuzz/corpus/ and a summary in Fuzz/CAMPAIGN.md (commit both)
SECONDS ?= 60
HOURS ?= 1
# vigil's own modules carry the coverage instrumentation (VIGIL_FUZZ_COVERAGE, see Package.swift);
# the targets link libFuzzer (Fuzz/Package.swift). FUZZ_BUILD: everything with AddressSanitizer
# (debug for replays, release for the campaign).
FUZZ_BUILD := cd Fuzz && VIGIL_FUZZ_COVERAGE=1 $(SWIFT) build --scratch-path ../.build-fuzz -Xswiftc -sanitize=address \
              -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld
# The targets `make fuzz` runs: optimised, libFuzzer without AddressSanitizer (what each run
# keeps is replayed through the debug AddressSanitizer build; see docs/hardening.md#fuzzing).
FUZZ_BUILD_FAST := cd Fuzz && VIGIL_FUZZ_ADDRESS_SANITIZER=0 VIGIL_FUZZ_COVERAGE=1 $(SWIFT) build \
              --scratch-path ../.build-fuzz-fast -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld
fuzz-build:
	@scripts/ensure-packages.sh $(BUILD_PACKAGES)
	$(FUZZ_BUILD_FAST) -c release
	$(FUZZ_BUILD) -c debug

fuzz: fuzz-build
	scripts/fuzz.sh $(SECONDS)

fuzz-campaign: fuzz-build
	$(FUZZ_BUILD) -c release
	scripts/fuzz-campaign.sh $(HOURS)

## sanitize: the Swift test suite once under ThreadSanitizer and once under AddressSanitizer
sanitize:
	@scripts/ensure-packages.sh $(BUILD_PACKAGES)
	$(SWIFT) test --scratch-path .build-tsan --sanitize=thread
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan-suppressions.txt $(SWIFT) test --scratch-path .build-asan --sanitize=address

## install: vigild to $(PREFIX)/bin, the units to /etc/systemd/system, the example config to
## /etc/vigil/vigil.yaml (an existing one is kept). Then: systemctl enable --now vigild
install: $(if $(BINARY),,release)
	@case '$(PREFIX)' in /*) ;; *) echo "PREFIX must be an absolute path: $(PREFIX)"; exit 2 ;; esac
	@case '$(PREFIX)' in *[\\\"\ \|\&]*) echo "PREFIX must be a path without spaces, quotes, backslashes, | or &: $(PREFIX)"; exit 2 ;; esac
	install -D -m 0755 $(or $(BINARY),$(RELEASE_BIN)) $(DESTDIR)$(PREFIX)/bin/vigild
	install -D -m 0755 $(VIGILCTL_BIN) $(DESTDIR)$(PREFIX)/bin/vigilctl
	$(if $(findstring ',$(RUNBOOK_URL)),$(error RUNBOOK_URL must be a URL without quotes (percent-encode them): $(RUNBOOK_URL)))
	@case '$(RUNBOOK_URL)' in *[\\\"\ ]*) \
		echo "RUNBOOK_URL must be a URL without backslashes, quotes or spaces (percent-encode them): $(RUNBOOK_URL)"; exit 2 ;; \
	esac
	@staging=$$(mktemp -d) && trap 'rm -rf "$$staging"' EXIT && \
	for shell in bash zsh fish; do \
		$(VIGILCTL_BIN) --generate-completion-script $$shell > $$staging/vigilctl.$$shell || exit 1; \
	done && \
	install -D -m 0644 $$staging/vigilctl.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/vigilctl && \
	install -D -m 0644 $$staging/vigilctl.zsh $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_vigilctl && \
	install -D -m 0644 $$staging/vigilctl.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/vigilctl.fish && \
	sed 's|$(SHIPPED_RUNBOOK_URL)|$(subst &,\&,$(subst |,\|,$(RUNBOOK_URL)))|' monitoring/vigil-alerts.yml > $$staging/vigil-alerts.yml && \
	install -D -m 0644 $$staging/vigil-alerts.yml $(DESTDIR)$(PREFIX)/share/vigil/monitoring/vigil-alerts.yml
	@staging=$$(mktemp -d) && trap 'rm -rf "$$staging"' EXIT && \
	sed 's|/usr/local/|$(PREFIX)/|g' systemd/vigild.service > $$staging/vigild.service && \
	install -D -m 0644 -t $(DESTDIR)/etc/systemd/system $$staging/vigild.service systemd/vigild.socket systemd/vigild-status.socket
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/vigil/README.md
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/doc/vigil/docs docs/*.md
	install -d -m 0755 $(DESTDIR)/etc/vigil
	@if [ -e $(DESTDIR)/etc/vigil/vigil.yaml ]; then \
		echo "keeping the existing $(DESTDIR)/etc/vigil/vigil.yaml (the example is systemd/vigil.yaml)"; \
	else \
		sed 's|/usr/local/|$(PREFIX)/|g' systemd/vigil.yaml > $(DESTDIR)/etc/vigil/vigil.yaml.new && \
		install -m 0644 $(DESTDIR)/etc/vigil/vigil.yaml.new $(DESTDIR)/etc/vigil/vigil.yaml && \
		rm -f $(DESTDIR)/etc/vigil/vigil.yaml.new; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

## uninstall: stops and removes what install put in place, except /etc/vigil (your configuration)
uninstall:
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
		systemctl disable --now vigild.service vigild.socket vigild-status.socket 2>/dev/null || true; \
	fi
	rm -f $(DESTDIR)$(PREFIX)/bin/vigild $(DESTDIR)$(PREFIX)/bin/vigilctl $(DESTDIR)$(PREFIX)/share/doc/vigil/README.md
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/vigil/docs
	rm -f $(DESTDIR)$(PREFIX)/share/bash-completion/completions/vigilctl $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_vigilctl \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/vigilctl.fish
	rm -f $(DESTDIR)$(PREFIX)/share/vigil/monitoring/vigil-alerts.yml
	-rmdir $(DESTDIR)$(PREFIX)/share/vigil/monitoring $(DESTDIR)$(PREFIX)/share/vigil 2>/dev/null
	rm -f $(DESTDIR)/etc/systemd/system/vigild.service $(DESTDIR)/etc/systemd/system/vigild.socket \
		$(DESTDIR)/etc/systemd/system/vigild-status.socket
	-rmdir $(DESTDIR)$(PREFIX)/share/doc/vigil 2>/dev/null
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "left $(DESTDIR)/etc/vigil in place; remove it if you no longer need the configuration"

clean:
	rm -rf .build .build-go .build-fuzz .build-fuzz-fast .build-tsan .build-asan .build-autobahn $(VENV) out
