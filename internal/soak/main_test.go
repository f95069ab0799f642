package soak

import (
	"flag"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xhrsse/xhrsse/internal/clustertest"
)

// soakFlag overrides XHRSSE_SOAK: go test ./internal/soak -args -soak=5m.
var soakFlag = flag.Duration("soak", 0, "how long each soak test runs (default XHRSSE_SOAK, else 15s)")

// defaultSoak keeps `go test ./...` within its time budget; a longer soak is
// a flag or an environment variable away (docs/RELIABILITY.md).
const defaultSoak = 15 * time.Second

// soakDuration is how long each soak test runs.
func soakDuration(t testing.TB) time.Duration {
	t.Helper()
	if *soakFlag > 0 {
		return *soakFlag
	}
	if v := os.Getenv("XHRSSE_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("XHRSSE_SOAK=%q: want a positive Go duration like 5m", v)
		}
		return d
	}
	if testing.Short() {
		return 5 * time.Second
	}
	return defaultSoak
}

// defaultClusterSoak is how long each cluster soak test runs unless
// XHRSSE_CLUSTER_SOAK (a Go duration) says otherwise.
const defaultClusterSoak = 5 * time.Second

// clusterSoakDuration is how long each cluster soak test runs.
func clusterSoakDuration(t testing.TB) time.Duration {
	t.Helper()
	v := os.Getenv("XHRSSE_CLUSTER_SOAK")
	if v == "" {
		return defaultClusterSoak
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("XHRSSE_CLUSTER_SOAK=%q: want a positive Go duration like 2m", v)
	}
	return d
}

// TestMain runs the helper process of TestIdleStreamsChat when asked to, and
// otherwise fails the package if a test leaves a goroutine behind: a relay of
// the proxy, a stream writer, a reconnect loop.
func TestMain(m *testing.M) {
	clustertest.RunChildBroker() // when this process is a broker of TestSoakBrokerKilled
	if os.Getenv(helperEnv) != "" {
		os.Exit(streamsHelper())
	}
	goleak.VerifyTestMain(m)
}
