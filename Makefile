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

# run: the server in the background, with the published channel "log" (token
# $$XHRSSE_PUBLISH_TOKEN, default demo-token; README "Publishing"), the TUI in
# the foreground; the server stops when the TUI quits.
run: build
	@./scripts/run.sh "$(ADDR)"

# server: only the server, in the foreground.
server:
	XHRSSE_PUBLISH_TOKEN=$${XHRSSE_PUBLISH_TOKEN:-demo-token} $(GO) run ./cmd/server -addr $(ADDR) -channel log=Log

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }

# The suite's fuzzing is a count of inputs, not a time: Go 1.26's fuzzing
# coordinator can fail a target with "context deadline exceeded" when a
# time runs out while a worker is mid-input (fixed in Go 1.27), and a count
# has no deadline to race.
test: vet
	$(GO) test -race -count=1 -timeout 15m ./...
	$(MAKE) fuzz FUZZTIME=20000x

# fuzz: every fuzz target briefly (FUZZTIME each, a time or a count of
# inputs such as 20000x); longer runs: make fuzz FUZZTIME=5m
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

# bench-load: xhrsse against the raw net/http and r3labs baselines, side by
# side (docs/PERFORMANCE.md). MODE= (default load), saturate or bulk.
bench-load:
	N=$(N) DUR=$(DUR) scripts/bench-load.sh $(MODE)

# bench-capacity: capacity per core, the headline figure. Each of xhrsse,
# raw and r3labs pinned to CPU 0, the load generator to CPU 1; N from
# CAP_FROM to CAP_TO by CAP_STEP, CAP_REPEAT windows of CAP_DUR a step,
# until a server no longer holds every stream with >= 99.9 % of ticks and
# chats and chat p99 <= 200 ms in most of a step's windows (one window is at
# the mercy of whatever else the machine does); reports the largest N held.
# About 15-45 min for the three. CAP_CHAT chats/s (1): chat p99 over a
# window is set by its slowest message once there are fewer than ~100.
CAP_FROM   ?= 1000
CAP_TO     ?= 12000
CAP_STEP   ?= 1000
CAP_DUR    ?= 10s
CAP_CHAT   ?= 1
CAP_REPEAT ?= 3
bench-capacity:
	FROM=$(CAP_FROM) TO=$(CAP_TO) STEP=$(CAP_STEP) DUR=$(CAP_DUR) CHAT=$(CAP_CHAT) REPEAT=$(CAP_REPEAT) scripts/bench-load.sh capacity

# screenshot: regenerates docs/screenshot.png (the page under load) with
# headless Chromium. CJK and emoji need fonts: apt-get install fonts-wqy-zenhei
screenshot:
	XHRSSE_SCREENSHOT=$(CURDIR)/docs/screenshot.png $(GO) test -count=1 -run 'TestScreenshot' ./web

# bench-hol: chat latency behind a bulk transfer on a slow link, through the
# loopback proxy; SHAPED=1 (root) over a tc-shaped veth link instead.
bench-hol:
	COUNT=$(or $(COUNT),1) SHAPED=$(SHAPED) scripts/bench-hol.sh

.PHONY: bench-load bench-capacity bench-hol screenshot

clean:
	rm -rf $(BIN)

# soak: the reliability soak for longer than the 15 s each of `make test`
# (docs/RELIABILITY.md): SOAK=30m runs each soak test for 30 minutes, the
# cluster soaks and the broker faults (5 s each in `make test`) included.
SOAK        ?= 5m
SOAKTIMEOUT ?= 3h
.PHONY: soak
soak:
	XHRSSE_SOAK=$(SOAK) XHRSSE_CLUSTER_SOAK=$(SOAK) $(GO) test -race -count=1 -v -run 'Soak' -timeout $(SOAKTIMEOUT) ./internal/soak

# cluster: BROKERS embedded NATS brokers (3: clustered over loopback routes,
# every stream and bucket on all three; or 1), NODES server processes joined
# to them and a round-robin proxy (no stickiness) on ADDR in front of them
# (cmd/cluster, docs/SCALING.md); Ctrl-C stops everything.
NODES   ?= 3
BROKERS ?= 3
.PHONY: cluster
cluster: build
	$(GO) build -o $(BIN)/xhrsse-cluster ./cmd/cluster
	./$(BIN)/xhrsse-cluster -brokers $(BROKERS) -nodes $(NODES) -addr $(ADDR) -server $(BIN)/xhrsse-server
