# refuge — make targets. `make demo` runs the main job, `make test` passes the tests.
GO      ?= go
BIN     := bin/refuge
PKGS    := ./...
# staticcheck is a tool of the module (go.mod's tool directive, pinned):
# nothing to install besides Go.
STATICCHECK ?= $(GO) tool staticcheck
FUZZTIME ?= 60s

.PHONY: all build demo test unit integration guest lint bench fuzz soak clean fresh-clone-check

all: build

build:
	$(GO) build -o $(BIN) ./cmd/refuge

demo: build
	./$(BIN) demo

# test: lint, then every unit and integration test with the race detector.
# TESTFLAGS adds go test flags (fresh-clone-check: -run '^_' builds every
# test and runs none).
test: lint
	$(GO) test -race -count=1 -timeout 25m $(TESTFLAGS) $(PKGS)

unit:
	$(GO) test -count=1 $(PKGS)

# integration: only the libvirt/QEMU suite (root, the packages .ci/run
# installs; docs/libvirt.md). `make test` runs it too when REFUGE_INTEGRATION=1.
guest:
	$(GO) run ./internal/guest/mkguest

integration: guest
	REFUGE_INTEGRATION=1 $(GO) test -race -count=1 -timeout 25m -v ./internal/testbed/ ./internal/hypervisor/libvirt/ ./cmd/refuge/

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./internal/...
	./$(BIN) bench plan --vms 100000 --hosts 1000 --json

# fuzz: run every fuzz target for FUZZTIME each (long; not part of `make test`).
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# fresh-clone-check: a clean clone with an empty GOPATH and module cache runs
# `make lint` and builds every test (scripts/fresh-clone-check.sh).
fresh-clone-check:
	./scripts/fresh-clone-check.sh

clean:
	rm -rf bin
