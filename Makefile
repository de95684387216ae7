# shoal developer targets. Everything here needs only Go, except `proto`,
# which also needs protoc (Debian: apt-get install protobuf-compiler).

GO ?= go
PROTO_TOOLS := -modfile=tools/go.mod

.PHONY: build test check vet fmt proto proto-check bench bench-compare bench-fill robustness dashboard-screenshot

build:
	$(GO) build ./...

test:
	$(GO) test -race ./...

vet:
	$(GO) vet ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

check: fmt vet test

# proto regenerates the Go code of api/*.proto with pinned plugins.
proto:
	$(GO) build $(PROTO_TOOLS) -o .bin/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	PATH="$(CURDIR)/.bin:$$PATH" protoc --proto_path=. \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		api/*.proto

# proto-check fails when the committed generated code is not what `make proto` makes.
proto-check: proto
	git diff --exit-code -- api/

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s ./...

# bench-compare measures shoal beside etcd v3.7.3 (built from the Go module
# proxy) on this machine: 3 members of each on loopback, the same client
# shapes through the same load generator, interleaved; it prints the table
# of ratios (docs/performance.md). About 7 minutes on 2 cores. The tool has
# its own module, so the product does not depend on etcd's client.
# BENCH_ARGS adds flags, e.g. BENCH_ARGS='--rounds 3 --json /tmp/b.json'.
BENCH_ARGS ?=
bench-compare:
	cd tools/benchcompare && $(GO) run . --repo ../.. $(BENCH_ARGS)

# bench-fill fills both with FILL objects of 256 B from 256 clients and
# measures the fill, the memory per member, a restart and a catch-up.
FILL ?= 1000000
bench-fill:
	cd tools/benchcompare && $(GO) run . --repo ../.. --shapes none --fill $(FILL) $(BENCH_ARGS)

# robustness runs the long profile of the robustness suite: RUNS runs of
# RUN_DURATION of traffic under faults, from SEED (0: random; always logged).
# A failed run prints where its history, visualisation and logs are, and the
# command that repeats it. The short profile runs within `make test`.
RUNS ?= 10
SEED ?= 0
RUN_DURATION ?= 30s
robustness:
	$(GO) test ./robustness/ -run LongProfile -count=1 -timeout 0 -v -args -runs $(RUNS) -seed $(SEED) -run-duration $(RUN_DURATION)

# dashboard-screenshot runs the dashboard's browser test (needs chromium)
# and saves its screenshot as docs/dashboard.png.
dashboard-screenshot:
	SHOAL_DASHBOARD_SCREENSHOT=$(CURDIR)/docs/dashboard.png $(GO) test -count=1 -run TestDashboardInBrowser ./e2e/
