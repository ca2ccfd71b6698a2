# berth — docker compose without Docker.
#   make demo   set up this machine and run the sample stack
#   make test   set up this machine and run every test (what CI runs)

GO       ?= go
CC       ?= gcc
TAGS     := seccomp netgo osusergo
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/berthrun/berth/internal/version.Version=$(VERSION) -extldflags -static
export PATH := $(PATH):/usr/local/go/bin

# staticcheck comes from the Go module proxy, built once per version into a
# cache outside the tree, so that every worktree and clean shares it.
STATICCHECK_VERSION := v0.8.2
TOOLS       ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/berth/tools
STATICCHECK := $(TOOLS)/staticcheck@$(STATICCHECK_VERSION)/staticcheck

.PHONY: all build deps test-deps demo test lint bench chaos clean

all: build

deps:
	@bash scripts/deps.sh

# What the tests need beside the build: qemu and the VM test's kernels.
test-deps:
	@bash scripts/deps.sh --test

build: deps
	$(GO) build -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o bin/berth ./cmd/berth
	$(GO) build -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o bin/berth-engine ./cmd/berth-engine
	$(CC) -static -Os -Wall -o bin/berth-init engine/runtime/cinit/berth-init.c

lint: deps $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags '$(TAGS)' ./...
	$(STATICCHECK) -tags '$(TAGS)' ./...

$(STATICCHECK):
	GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Unit tests of every package, then end-to-end tests of the built binary,
# then a bounded run of the compose loader's fuzz test.
test: test-deps build lint
	BERTH_BIN=$(CURDIR)/bin/berth $(GO) test -tags '$(TAGS)' -count=1 -p 2 -timeout 60m ./...
	$(GO) test -tags '$(TAGS)' -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime 20s ./project/

# The fault-injection suite alone, with more cycles than make test's pass
# (CHAOS_CYCLES=30 by default there); CHAOS_SEED=N replays a run.
CHAOS_CYCLES ?= 200
chaos: build
	BERTH_BIN=$(CURDIR)/bin/berth CHAOS_CYCLES=$(CHAOS_CYCLES) $(GO) test -tags '$(TAGS)' -count=1 -v -run TestChaos -timeout 20m ./tests/chaos/

demo: build
	@bash samples/demo.sh

# One run of every benchmark (stacks, scale, container start, proxy, real
# servers behind published ports, builds, memory), then one summary table of
# berth next to its baselines. Benchmarks print; only a broken setup fails.
# The first run makes the servers' and the Go build's Debian images
# (debootstrap, minutes; cached).
bench: build
	@bash scripts/deps.sh --bench
	BERTH_BIN=$(CURDIR)/bin/berth $(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchtime 1x -count=1 -timeout 60m ./tests/bench/

clean:
	rm -rf bin
