package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: a stream
// writer, a channel ticker or a reader of ours that never stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
