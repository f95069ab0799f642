package web_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: browsers, proxies,
// test servers and Go-side streams all stop with their test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
