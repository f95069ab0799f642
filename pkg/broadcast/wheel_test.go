package broadcast

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// The wheel hands back a wake in the first firing at or after its time, and
// one further ahead than a lap early (the stream then puts itself back).
func TestFlushWheelTake(t *testing.T) {
	w := newFlushWheel(200 * time.Millisecond) // 25 ms slots, 10 of them
	slot := int64(w.slot)
	base := w.done
	a, b, far := &Stream{}, &Stream{}, &Stream{}
	w.add(a, (base+2)*slot)      // due exactly at slot base+2
	w.add(b, (base+3)*slot+1)    // just past slot base+3: rounds up to base+4
	w.add(far, (base+1000)*slot) // beyond the lap: its last slot
	if got := w.take(base+1, nil); len(got) != 0 {
		t.Fatalf("slot base+1 fired %d wakes, want none", len(got))
	}
	if got := w.take(base+3, nil); len(got) != 1 || got[0] != a {
		t.Fatalf("up to base+3: %v, want a only", got)
	}
	if got := w.take(base+4, nil); len(got) != 1 || got[0] != b {
		t.Fatalf("base+4: %v, want b only", got)
	}
	if got := w.take(base+int64(len(w.slots)), nil); len(got) != 1 || got[0] != far {
		t.Fatalf("end of the lap: %v, want the far wake, early", got)
	}
	// A wake asked for in the past goes in the next slot, not a passed one.
	w.add(a, 0)
	if got := w.take(w.done+1, nil); len(got) != 1 || got[0] != a {
		t.Fatalf("a wake for the past: %v, want it in the next slot", got)
	}
}

// Ticks pushed faster than the flush interval all arrive, in order, and the
// stream writes at most once per interval: holding wakes on the wheel loses
// none of them.
func TestFlushWheelDeliversEverything(t *testing.T) {
	const d = 100 * time.Millisecond
	h := quietHub(t, WithFlushInterval(d))
	s, _ := h.NewSession(nil)
	st, _ := h.Attach(s, Position{})
	w := &timedWriter{flushWriter: newFlushWriter()}
	runStream(t, st, w)
	w.piece(t) // preamble
	const n = 60
	go func() {
		for i := range n {
			s.push(tickEvent(string(rune('A' + i))))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var got strings.Builder
	for strings.Count(got.String(), "event: one\n") < n {
		got.WriteString(w.piece(t))
	}
	var want strings.Builder
	for i := range n {
		want.WriteString("data: " + string(rune('A'+i)) + "\n")
	}
	var data strings.Builder
	for line := range strings.Lines(got.String()) {
		if strings.HasPrefix(line, "data: ") {
			data.WriteString(line)
		}
	}
	if data.String() != want.String() {
		t.Fatalf("data lines\n%s\nwant\n%s", data.String(), want.String())
	}
	// Flushes are timed as the stream makes them; its interval counts
	// from the moment just before its write, so allow a little less. The
	// first, the preamble, is left out: what is waiting when a stream
	// starts (a replay, a tick pushed meanwhile) follows it at once.
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := 2; i < len(w.at); i++ {
		if gap := w.at[i].Sub(w.at[i-1]); gap < d*9/10 {
			t.Fatalf("writes %d and %d were %v apart; the interval is %v", i-1, i, gap, d)
		}
	}
}

// timedWriter is a flushWriter that notes when each flush was made.
type timedWriter struct {
	*flushWriter
	mu sync.Mutex
	at []time.Time // guarded by mu
}

func (w *timedWriter) FlushError() error {
	w.mu.Lock()
	w.at = append(w.at, time.Now())
	w.mu.Unlock()
	return w.flushWriter.FlushError()
}
