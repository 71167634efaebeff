# raftguard build, test and lint targets. `make help` lists them.

GO      ?= go
GOFMT   ?= gofmt

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

VERSION_PKG := github.com/raftguard/raftguard/internal/version
LDFLAGS     := -s -w -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT)

# staticcheck 2026.2.2 (module version v0.8.2) builds with and understands
# go1.26. Override with `make tools STATICCHECK_VERSION=...`.
STATICCHECK_VERSION ?= v0.8.2
GOBIN_DIR   := $(firstword $(subst :, ,$(shell $(GO) env GOPATH)))/bin
STATICCHECK ?= $(GOBIN_DIR)/staticcheck

TEST_TIMEOUT ?= 20m
# Per-benchmark time: 200ms gives stable figures in well under a minute per
# package; `make bench BENCHTIME=1x` runs each benchmark once as a smoke test.
BENCHTIME    ?= 200ms
BENCH_PKGS   := $(addprefix ./,$(addsuffix /,$(wildcard fsm raftnode httpapi)))

# Every Go file outside .git, bin and testdata, for the gofmt check.
GOFMT_FIND := find . -path ./.git -prune -o -path ./bin -prune -o -name testdata -prune -o -name '*.go' -type f

.DEFAULT_GOAL := build

.PHONY: test-kernel test-faults soak bench-ceiling bench-compare bench-failover bench-elections tidy-check install demo all build test test-race lint fmt fmt-check vet staticcheck bench fuzz-seed clean tools help

all: lint test build

## build: compile bin/raftguard with version and commit stamped in
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/raftguard ./cmd/raftguard

PREFIX     ?= /usr/local
SYSTEMDDIR ?= /etc/systemd/system

## install: bin/raftguard into $(PREFIX)/bin and the systemd unit into $(SYSTEMDDIR)
install: build
	install -D -m 0755 bin/raftguard $(DESTDIR)$(PREFIX)/bin/raftguard
	install -D -m 0644 dist/raftguard.service $(DESTDIR)$(SYSTEMDDIR)/raftguard.service

## demo: as root, a three-node cluster and a client in network namespaces, with a failover
demo: build
	@if [ "$$(id -u)" -ne 0 ]; then echo "make demo builds network namespaces: run it as root"; exit 1; fi
	./bin/raftguard demo

## test: gofmt check, go vet, then every test (root-only tests skip themselves)
test: fmt-check vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

## test-race: every test under the race detector
test-race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...

## screenshots: the web console's browser suite, writing docs/console-*.png (needs chromium)
screenshots:
	RAFTGUARD_SCREENSHOTS=$(CURDIR)/docs $(GO) test -count=1 -run TestConsoleInBrowser -v ./test

## lint: gofmt check, go vet, staticcheck
lint: fmt-check vet staticcheck tidy-check

## fmt: rewrite unformatted Go files in place
fmt:
	$(GOFMT_FIND) -exec $(GOFMT) -l -w {} +

## fmt-check: fail when a Go file is not gofmt-formatted
fmt-check:
	@echo "gofmt -l"
	@out="$$($(GOFMT_FIND) -exec $(GOFMT) -l {} +)" || { echo "gofmt failed"; exit 1; }; \
	if [ -n "$$out" ]; then \
		echo "these files need gofmt (run 'make fmt'):"; echo "$$out"; exit 1; \
	fi

vet:
	$(GO) vet ./...

## tidy-check: fail when `go mod tidy` would change go.mod or go.sum
tidy-check:
	$(GO) mod tidy -diff

staticcheck:
	@test -x "$(STATICCHECK)" || { echo "staticcheck not found at $(STATICCHECK); run 'make tools'"; exit 1; }
	$(STATICCHECK) -version
	$(STATICCHECK) ./...

## bench: benchmarks of fsm, raftnode and httpapi, with allocation figures
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count 1 -timeout 30m $(BENCH_PKGS)

## bench-ceiling: peer creates through the API at 32 clients beside bare hashicorp/raft's ceiling on this machine, in one go (ROUNDS, default 3; BENCHTIME, default 2s)
bench-ceiling:
	GO=$(GO) test/bench-ceiling.sh

## bench-failover: as root, the client outage over five SIGKILLs and five transfers in the namespace lab (RAFTGUARD_TEST_RAFT_HEARTBEAT=150ms: other Raft timeouts)
bench-failover:
	$(GO) test -run '^$$' -bench '^BenchmarkFailover$$' -benchtime 1x -timeout 20m ./test/

## bench-elections: as root, elections on a healthy 3-node lab cluster, idle and under the fault suite's workload (RAFTGUARD_BENCH_WINDOW each, default 60s)
bench-elections:
	$(GO) test -run '^$$' -bench '^BenchmarkFalseElections$$' -benchtime 1x -timeout 20m ./test/

## test-faults: as root, the fault-injection suite: kills, partitions, SIGSTOP, snapshot install, restarts, a flapping link and a full disk, under a write workload (about 5 minutes)
test-faults:
	RAFTGUARD_FAULTS=1 $(GO) test -count=1 -v -run '^TestFaults' -timeout 30m ./test/

## test-kernel: as root, the namespace end-to-end tests and the fault scenarios with the kernel WireGuard data plane, inside Debian's stock kernel booted in qemu (TCG); for hosts without the WireGuard module (test/kernelvm/run.sh)
test-kernel:
	test/kernelvm/run.sh

## soak: as root, the fault-injection suite in its long mode (more kills and rounds, 3 minutes of flapping)
soak:
	RAFTGUARD_FAULTS=1 RAFTGUARD_SOAK=1 $(GO) test -count=1 -v -run '^TestFaults' -timeout 120m ./test/

BENCH_REPORT ?= $(CURDIR)/bench-compare.md

## bench-compare: as root, the side-by-side and scale benchmarks; tables in $(BENCH_REPORT)
bench-compare:
	rm -f "$(abspath $(BENCH_REPORT))"
	RAFTGUARD_BENCH_REPORT="$(abspath $(BENCH_REPORT))" $(GO) test -run '^$$' -bench 'Compare|Scale' -benchtime 1x -timeout 90m ./test/; \
	rc=$$?; echo "tables: $(abspath $(BENCH_REPORT))"; exit $$rc

## fuzz-seed: run every fuzz target on its seed corpus only (no fuzzing)
fuzz-seed:
	$(GO) test -count=1 -run '^Fuzz' ./...

## clean: remove build and test output
clean:
	rm -rf bin
	rm -f *.test *.out *.prof

## tools: install staticcheck (STATICCHECK_VERSION) into $(go env GOPATH)/bin
tools:
	GOBIN=$(GOBIN_DIR) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(STATICCHECK) -version

help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)
