package ssetest_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/xhrsse/xhrsse/internal/ssetest"
)

// TestEventuallyHolds: both kinds of condition are polled until they hold.
func TestEventuallyHolds(t *testing.T) {
	var n atomic.Int32
	ssetest.Eventually(t, "three calls", func() bool { return n.Add(1) >= 3 })
	ssetest.Eventually(t, "six calls", func() error {
		if n.Add(1) < 6 {
			return errors.New("not yet")
		}
		return nil
	})
}

// fatalTB records a Fatalf and stops the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestEventuallyFails: a condition that never holds fails the test after
// Wait, with what was waited for and the condition's last error.
func TestEventuallyFails(t *testing.T) {
	t.Parallel() // it waits ssetest.Wait
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ssetest.Eventually(f, "the impossible", func() error { return errors.New("still no") })
	}()
	<-done
	if !strings.Contains(f.msg, "the impossible") || !strings.Contains(f.msg, "still no") {
		t.Fatalf("failure %q names neither what nor why", f.msg)
	}
}
