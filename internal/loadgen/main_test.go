package loadgen

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a run leaves a goroutine behind: a poller,
// a chat POST, a baseline ticker or an idle HTTP connection.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
