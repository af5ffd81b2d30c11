# WasmFaaS: the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

GO       ?= go
BIN      := bin/faas
ADDR     ?= 127.0.0.1:8000
# Debian packages beyond what the interpreter build (runtime/pybuild/build.sh)
# installs itself: RUN_PKGS for `make run` (a Python to submit a first
# function with), TEST_PKGS for the tests and `make bench` (redis-server for
# the integration tests, also as the sentinels of the Sentinel tests:
# `redis-server --sentinel` needs no redis-sentinel package; pytest for the
# end-to-end suites, chromium for the dashboard test, iproute2 for the
# network-namespace test).
RUN_PKGS  := python3 python3-dill python3-requests
TEST_PKGS := $(RUN_PKGS) redis-server python3-pytest chromium iproute2

.PHONY: all build image faas deps deps-test run test test-go test-e2e vet bench clean

all: build

# deps and deps-test install what is missing, with apt-get (as root, or
# through sudo).
define apt_install
	@command -v $(GO) >/dev/null || { echo "Go is missing: install Go 1.26 at /usr/local/go (https://go.dev/dl)"; exit 1; }
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		echo "installing:$$missing"; \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(RUN_PKGS))

deps-test:
	$(call apt_install,$(TEST_PKGS))

# image builds CPython for WASI once (a few minutes), then reuses the cache.
image:
	@runtime/pybuild/build.sh >/dev/null

faas:
	$(GO) build -o $(BIN) ./cmd/faas

build: deps image faas

run: build
	$(BIN) up --addr $(ADDR)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

test-go:
	$(GO) test -race -count=1 ./...

test-e2e:
	FAAS_BIN=$(CURDIR)/$(BIN) /usr/bin/python3 -m pytest -q tests/e2e tests/client tests/adversarial

test: build deps-test vet test-go test-e2e

# bench runs the sandbox micro-benchmarks and the study (bench/results/report.md).
# BenchmarkFib25 also times the guest's C source built natively the guest's
# way (runtime/pybuild/native.sh, about a minute once), to split its ratio.
bench: build deps-test
	mkdir -p bench/results
	FAAS_NATIVE_PLAIN="$$(runtime/pybuild/native.sh)" && export FAAS_NATIVE_PLAIN && \
	$(GO) test -run '^$$' -bench . -benchtime 2s ./runtime/ | tee bench/results/runtime-benchmarks.txt
	$(BIN) bench study --out bench/results
	$(BIN) bench scale --out bench/results

clean:
	rm -rf bin
