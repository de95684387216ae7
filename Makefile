# shoal developer targets. Everything here needs only Go, except `proto`,
# which also needs protoc (Debian: apt-get install protobuf-compiler).

GO ?= go
PROTO_TOOLS := -modfile=tools/go.mod

.PHONY: build test check vet fmt proto proto-check bench robustness

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

# robustness runs the long profile of the robustness suite: RUNS runs of
# RUN_DURATION of traffic under faults, from SEED (0: random; always logged).
# A failed run prints where its history, visualisation and logs are, and the
# command that repeats it. The short profile runs within `make test`.
RUNS ?= 10
SEED ?= 0
RUN_DURATION ?= 30s
robustness:
	$(GO) test ./robustness/ -run LongProfile -count=1 -timeout 0 -v -args -runs $(RUNS) -seed $(SEED) -run-duration $(RUN_DURATION)
