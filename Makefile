# WasmFaaS: the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

GO       ?= go
BIN      := bin/faas
ADDR     ?= 127.0.0.1:8000
# Debian packages the tests and the service need; the interpreter build
# (runtime/pybuild/build.sh) installs its own.
APT_PKGS := redis-server python3 python3-dill python3-pytest python3-requests

.PHONY: all build image faas deps run test test-go test-e2e vet bench clean

all: build

# deps installs what is missing, with apt-get (as root, or through sudo).
deps:
	@command -v $(GO) >/dev/null || { echo "Go is missing: install Go 1.26 at /usr/local/go (https://go.dev/dl)"; exit 1; }
	@missing=""; for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		echo "installing:$$missing"; \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

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
	FAAS_BIN=$(CURDIR)/$(BIN) /usr/bin/python3 -m pytest -q tests/e2e tests/client

test: build vet test-go test-e2e

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./runtime/

clean:
	rm -rf bin
