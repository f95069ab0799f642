package ssetest

import (
	"testing"
	"time"
)

// A Condition is what Eventually polls: a func() bool, or a func() error
// whose last error says why the condition did not hold.
type Condition interface {
	func() bool | func() error
}

// Eventually polls cond every 20 ms until it holds, and fails the test after
// Wait, naming what it waited for.
func Eventually[C Condition](t testing.TB, what string, cond C) {
	t.Helper()
	if err := poll(Wait, 20*time.Millisecond, check(cond)); err != nil {
		t.Fatalf("timed out waiting for %s: %v", what, err)
	}
}

// notYet is the last error of a func() bool that never held.
type notYet struct{}

func (notYet) Error() string { return "the condition never held" }

func check[C Condition](cond C) func() error {
	switch f := any(cond).(type) {
	case func() bool:
		return func() error {
			if f() {
				return nil
			}
			return notYet{}
		}
	case func() error:
		return f
	}
	panic("unreachable: Condition has two members")
}

// poll calls f every interval until it returns nil or d has passed, and
// returns its last error.
func poll(d, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}
