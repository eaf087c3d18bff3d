# Lucid build. `make run` builds everything and serves with config.hcl;
# `make test` runs the whole suite.
GO      ?= go
BIN     := bin
POLICIES := $(patsubst policies/%/,$(BIN)/policies/%.wasm,$(wildcard policies/*/))

.PHONY: all build run test vet bench clean

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

test:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) test -race -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1s ./...

clean:
	rm -rf $(BIN)

FORCE:
