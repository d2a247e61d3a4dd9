# refuge — make targets. `make demo` runs the main job, `make test` passes the tests.
GO      ?= go
BIN     := bin/refuge
PKGS    := ./...
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(HOME)/go/bin/staticcheck)
FUZZTIME ?= 60s

.PHONY: all build demo test unit integration guest lint bench fuzz soak clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/refuge

demo: build
	./$(BIN) demo

# test: lint, then every unit and integration test with the race detector.
test: lint
	$(GO) test -race -count=1 -timeout 25m $(PKGS)

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

clean:
	rm -rf bin
