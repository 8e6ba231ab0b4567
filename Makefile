# vigil — see README.md. `make run` and `make test` are the two commands of the quick start.

SWIFT        ?= swift
VENV         := .venv
PYTHON       := $(VENV)/bin/python
# Packages each target needs on a fresh Debian 12 with Swift (check:package).
RUN_PACKAGES  := "command -v git:git" "command -v pkg-config:pkg-config" "pkg-config --exists libsystemd:libsystemd-dev"
TEST_PACKAGES := "command -v python3:python3" "python3 -c 'import ensurepip':python3-venv"

.PHONY: run build release test unit-test blackbox-test venv clean

## run: build a release vigild and run it on its embedded defaults (ws://127.0.0.1:8080/ws, status on :9090)
run: release
	.build/release/vigild

release:
	@scripts/ensure-packages.sh $(RUN_PACKAGES)
	$(SWIFT) build -c release --product vigild

build:
	@scripts/ensure-packages.sh $(RUN_PACKAGES)
	$(SWIFT) build --build-tests

## test: Swift unit and pipeline tests, then the black-box suite against the real vigild binary
test: unit-test blackbox-test

unit-test: build
	$(SWIFT) test --skip-build

blackbox-test: build venv
	VIGILD=$(CURDIR)/.build/debug/vigild $(PYTHON) -m pytest -q Tests/blackbox

venv: $(VENV)/.installed

$(VENV)/.installed: Tests/blackbox/requirements.txt
	@scripts/ensure-packages.sh $(TEST_PACKAGES)
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r Tests/blackbox/requirements.txt
	touch $@

clean:
	rm -rf .build $(VENV)
