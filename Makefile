# lbd — the two commands a new user needs are `make run` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin

.PHONY: all build run test test-short bench lint fuzz clean

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

clean:
	rm -rf $(BIN) bench.txt
