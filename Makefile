# xhrsse — see README.md. Every target works on a fresh machine with Go.
GO      ?= go
ADDR    ?= 127.0.0.1:8080
BIN     := bin
N       ?= 1000
DUR     ?= 20s

.PHONY: all build run server test vet fmt bench fuzz clean

all: build

build:
	$(GO) build -o $(BIN)/xhrsse-server ./cmd/server
	$(GO) build -o $(BIN)/xhrsse-tui ./cmd/tui

# run: the server in the background, the TUI in the foreground; the server
# stops when the TUI quits.
run: build
	@./scripts/run.sh "$(ADDR)"

# server: only the server, in the foreground.
server:
	$(GO) run ./cmd/server -addr $(ADDR)

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }

test: vet
	$(GO) test -race -timeout 15m ./...
	$(MAKE) fuzz FUZZTIME=5s

# fuzz: every fuzz target briefly (FUZZTIME each); longer runs: make fuzz FUZZTIME=5m
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...

clean:
	rm -rf $(BIN)
