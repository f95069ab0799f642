package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
)

// eventually bounds every wait of these tests: generous, so a loaded 2-core
// machine does not make them flaky; nothing is asserted about speed.
const eventually = ssetest.Wait

// isNotFound reports whether err is an *APIError with status 404.
func isNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// runHandle runs Session.Run for a test and lets the test wait for events.
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
	return startRunN(t, s, 256)
}

// startRunN runs with an events channel of n places: with few, Run cannot
// get far ahead of what the test has seen.
func startRunN(t testing.TB, s *Session, n int) *runHandle {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &runHandle{t: t, s: s, events: make(chan Event, n), cancel: cancel, done: make(chan error, 1)}
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
		select {
		case ev := <-h.events:
			h.take(ev)
			return ev
		default:
		}
		h.t.Fatalf("waiting for %s: Run returned %v", what, err)
	case <-time.After(eventually):
		h.t.Fatalf("waiting for %s: nothing after %v", what, eventually)
	}
	return Event{}
}

func (h *runHandle) take(ev Event) {
	if ev.Kind != State && ev.ID != 0 {
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
			// Run has returned; what it sent before is still buffered, and
			// this goroutine alone takes from it.
			for len(h.events) > 0 {
				ev := <-h.events
				h.take(ev)
				if pred(ev) {
					return ev
				}
			}
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

// checkIDs fails the test unless the ids of the stream events taken are
// consecutive: each is the one before plus one, or, for a gap, plus what it
// says was missed (its id is the last missed one). State events and those
// Run makes up (id 0), and bye (which repeats the position), are skipped.
func (h *runHandle) checkIDs() {
	h.t.Helper()
	var prev uint64
	for i, ev := range h.log {
		if ev.ID == 0 || ev.Kind == Bye {
			continue
		}
		want := prev + 1
		if ev.Kind == Gap {
			want = prev + ev.Gap.Missed
		}
		if prev != 0 && ev.ID != want {
			h.t.Fatalf("event %d: id %d after %d, want %d: %s", i, ev.ID, prev, want, tail(h.log[:i+1], 4))
		}
		prev = ev.ID
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
