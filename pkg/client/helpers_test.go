package client

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// eventually bounds every wait of these tests: generous, so a loaded 2-core
// machine does not make them flaky; nothing is asserted about speed.
const eventually = 20 * time.Second

// runner runs Session.Run for a test and lets the test wait for events.
type runHandle struct {
	t      testing.TB
	s      *Session
	events chan Event
	cancel context.CancelFunc
	done   chan error
	// ids of every non-State event taken, in order.
	ids []uint64
	// all events taken, in order.
	log []Event
}

func startRun(t testing.TB, s *Session) *runHandle {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &runHandle{t: t, s: s, events: make(chan Event, 256), cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- s.Run(ctx, h.events) }()
	t.Cleanup(func() { h.stop() })
	return h
}

// stop cancels Run and returns its error (nil if it returned context.Canceled).
func (h *runHandle) stop() error {
	h.cancel()
	select {
	case err := <-h.done:
		h.done <- err // keep it for a second stop
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	case <-time.After(eventually):
		h.t.Errorf("Run did not return after cancel")
		return nil
	}
}

// next returns the next event, or fails the test after eventually.
func (h *runHandle) next(what string) Event {
	h.t.Helper()
	select {
	case ev := <-h.events:
		h.take(ev)
		return ev
	case err := <-h.done:
		h.done <- err
		h.t.Fatalf("waiting for %s: Run returned %v", what, err)
	case <-time.After(eventually):
		h.t.Fatalf("waiting for %s: nothing after %v", what, eventually)
	}
	return Event{}
}

func (h *runHandle) take(ev Event) {
	if ev.Kind != State {
		h.ids = append(h.ids, ev.ID)
	}
	h.log = append(h.log, ev)
}

// waitFor takes events until one satisfies pred and returns it.
func (h *runHandle) waitFor(what string, pred func(Event) bool) Event {
	h.t.Helper()
	deadline := time.After(eventually)
	for {
		select {
		case ev := <-h.events:
			h.take(ev)
			if pred(ev) {
				return ev
			}
		case err := <-h.done:
			h.done <- err
			h.t.Fatalf("waiting for %s: Run returned %v", what, err)
		case <-deadline:
			h.t.Fatalf("waiting for %s: not seen in %v; last events: %s", what, eventually, tail(h.log, 8))
		}
	}
}

func (h *runHandle) waitState(st ConnState) Event {
	h.t.Helper()
	return h.waitFor("state "+st.String(), func(ev Event) bool { return ev.Kind == State && ev.State == st })
}

// checkIDs fails the test unless the ids taken are strictly increasing with
// no hole (consecutive).
func (h *runHandle) checkIDs() {
	h.t.Helper()
	for i := 1; i < len(h.ids); i++ {
		if h.ids[i] != h.ids[i-1]+1 {
			h.t.Fatalf("ids not consecutive at %d: %d then %d", i, h.ids[i-1], h.ids[i])
		}
	}
}

func tail(log []Event, n int) string {
	if len(log) > n {
		log = log[len(log)-n:]
	}
	s := ""
	for _, ev := range log {
		s += describe(ev) + "; "
	}
	return s
}

func describe(ev Event) string {
	if ev.Kind == State {
		return fmt.Sprintf("State %s attempt %d err %v", ev.State, ev.Attempt, ev.Err)
	}
	d := string(ev.Data)
	if len(d) > 40 {
		d = d[:40] + "…"
	}
	return fmt.Sprintf("%s #%d %s %q", ev.Kind, ev.ID, ev.Name, d)
}
