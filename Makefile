# lbd — the two commands a new user needs are `make run` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     ?= bin
DIST    ?= dist
# make release: static binaries (no libc, no cgo) for each of these.
PLATFORMS := linux/amd64 linux/arm64

.PHONY: all build run test test-short bench lint fuzz clean release example-cert

all: build

build: ## build lbd and its helpers into bin/
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/lbd ./cmd/lbd
	$(GO) build -o $(BIN)/lbd-backend ./cmd/lbd-backend
	$(GO) build -o $(BIN)/lbd-load ./cmd/lbd-load
	$(GO) build -o $(BIN)/lbd-overload ./cmd/lbd-overload
	$(GO) build -o $(BIN)/lbd-failure ./cmd/lbd-failure

run: ## run lbd with three embedded demo backends
	$(GO) run ./cmd/lbd -demo

test: ## vet, then every test with the race detector
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

test-short:
	$(GO) test -count=1 ./...

bench: ## hot-path benchmarks (compare runs with benchstat)
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./scheduler/ ./proxy/ | tee bench.txt

fuzz: ## a short run of every fuzz target
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./config/

lint: ## gofmt and vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

release: ## versioned static lbd binaries for linux/amd64 and arm64 in dist/, with SHA256SUMS
	@mkdir -p $(DIST)
	rm -f $(DIST)/lbd-* $(DIST)/SHA256SUMS
	@for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; out=$(DIST)/lbd-$(VERSION)-$$os-$$arch; \
	  echo "CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags \"-s -w $(LDFLAGS)\" -o $$out ./cmd/lbd"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $$out ./cmd/lbd || exit 1; \
	done
	cd $(DIST) && sha256sum lbd-$(VERSION)-* > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

example-cert: ## a throwaway self-signed certificate for examples/tls.json
	examples/tls/make-cert.sh

clean:
	rm -rf $(BIN) $(DIST) bench.txt
