package proxytest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: proxies, streams
// and the clients' read loops all stop with their test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
