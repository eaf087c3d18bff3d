# Lucid build. `make run` builds everything and serves with config.hcl;
# `make test` runs the whole suite, with the OpenStack clients'
# compatibility suite (it installs their Debian packages when missing),
# then the endurance run (`make soak`).
GO      ?= go
BIN     := bin
POLICIES := $(patsubst policies/%/,$(BIN)/policies/%.wasm,$(wildcard policies/*/))

# make test fuzzes every Go fuzz target (each func Fuzz* in a _test.go
# file) for FUZZTIME. A new input that widens coverage is minimized for at
# most FUZZMINIMIZE: Go's default, 60s, spends a short run minimizing (the
# config loader's inputs are whole HCL files, and each try scans the
# binary's whole coverage map), so it would show 0 execs/s and fuzz
# nothing. Seeds and every crash found are in testdata/fuzz/<target>.
FUZZTIME     ?= 4s
FUZZMINIMIZE ?= 1s

# The endurance run of make test (internal/soak): this many status changes
# through lucid serve on a 64 MiB etcd quota. It checks growth and rot, not
# latency: its policy calls may take 1s, because on a busy 2-core machine
# a few calls in 200,000 miss the default 100ms and are refused. Its
# throughput trend need only stay above half its start: that catches the
# rate halving, not a slow decline. The store keeps settling for 3-4
# minutes after its file reached its steady size (a 1,000,000-change run
# went from 0.46 to about 0.6 ms of server CPU per change, then stayed
# flat and ended at 101%), so an 80-s run is judged inside that settling:
# one build gave 66% to 136% on 2026-12-06. make soak
# SOAK_CHANGES=2000000 SOAK_MIN=0.9 judges the trend by the full bar.
SOAK_CHANGES ?= 200000
SOAK_MIN ?= 0.5
SOAK = $(BIN)/lucid bench soak --changes $(SOAK_CHANGES) --quota-mib 64 --policy-timeout 1s --min-throughput $(SOAK_MIN)

.PHONY: all build run test test-deps fuzz soak vet bench bench-throughput clean

all: build

build: $(BIN)/lucid $(BIN)/lucid-driver-fake $(POLICIES)

$(BIN)/lucid: FORCE
	$(GO) build -o $@ .

$(BIN)/lucid-driver-fake: FORCE
	$(GO) build -o $@ ./plugins/fake

$(BIN)/policies/%.wasm: FORCE
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o $@ ./policies/$*

run: build
	$(BIN)/lucid serve --config config.hcl

# test-deps installs the Debian packages the compatibility suite drives
# (core/api/compat: the OpenStack clients and tempest) when missing.
test-deps:
	bash .ci/debian-packages

test: test-deps build
	$(GO) vet ./...
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	# Compile the test policies once, without the race detector (whose
	# wazero compiler is many times slower), into the shared test cache.
	$(GO) test -count=1 ./internal/testenv/warm
	$(GO) test -race -count=1 ./...
	$(MAKE) fuzz
	$(SOAK)

fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' core sdk plugins policies internal); do \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "fuzz ./$$(dirname $$f) $$t for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) ./$$(dirname $$f); \
	  done; \
	done

soak: build
	$(SOAK)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1s ./...

# The whole path against raw etcd, with what each status change costs
# (internal/throughput). Not part of make test: it measures, it does not
# check. THROUGHPUT_FLAGS=--json for machine-readable output.
THROUGHPUT_FLAGS ?=
bench-throughput: build
	$(BIN)/lucid bench throughput $(THROUGHPUT_FLAGS)

clean:
	rm -rf $(BIN)

FORCE:
