package broadcast

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestRingKeepsMinEventsAndWindow(t *testing.T) {
	tests := []struct {
		name              string
		minEvents, max    int
		age               time.Duration
		pushes            int
		spacing           time.Duration
		wantFirst, wantNx uint64
	}{
		{"under min", 8, 64, 0, 5, time.Second, 1, 6},
		{"min only, old events", 8, 64, time.Minute, 20, time.Minute, 13, 21},
		{"young events kept past min", 8, 64, time.Minute, 40, time.Millisecond, 1, 41},
		{"hard cap wins over age", 8, 32, time.Hour, 100, time.Millisecond, 69, 101},
		{"no age window keeps min", 3, 5, 0, 9, time.Second, 7, 10},
		{"max not a power of two", 3, 5, time.Hour, 9, time.Second, 5, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := defaultOptions()
			o.replayEvents, o.replayMax, o.replayAge = tc.minEvents, tc.max, tc.age
			r := newRing()
			at := time.Now()
			for i := range tc.pushes {
				id := r.push(&event{at: at.UnixNano()}, &o)
				if id != uint64(i+1) {
					t.Fatalf("push %d got id %d", i, id)
				}
				at = at.Add(tc.spacing)
			}
			if r.first != tc.wantFirst || r.next != tc.wantNx {
				t.Fatalf("ring holds %d..%d, want %d..%d", r.first, r.next-1, tc.wantFirst, tc.wantNx-1)
			}
			for id := r.first; id < r.next; id++ {
				if r.get(id) == nil {
					t.Fatalf("id %d not held", id)
				}
			}
			if r.get(r.first-1) != nil || r.get(r.next) != nil {
				t.Fatal("ids outside the ring returned an event")
			}
		})
	}
}

func TestRingSkipTo(t *testing.T) {
	o := defaultOptions()
	r := newRing()
	r.push(&event{}, &o)
	r.skipTo(100)
	if r.len() != 0 || r.push(&event{}, &o) != 100 {
		t.Fatalf("after skipTo: first %d next %d", r.first, r.next)
	}
}

// TestRingMatchesModel pushes events across many block boundaries, with
// evictions by count, age and cap and skips in between, and checks after
// every step that the ring holds exactly what a plain slice with the same
// rule holds.
func TestRingMatchesModel(t *testing.T) {
	tests := []struct {
		name           string
		minEvents, max int
		age            time.Duration
	}{
		{"floor only", 100, 1000, 0},
		{"floor of one block", blockSize, 4 * blockSize, 0},
		{"age window", 50, 700, 40 * time.Millisecond},
		{"cap of one", 1, 1, time.Hour},
		{"cap below a block", 3, 5, time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := defaultOptions()
			o.replayEvents, o.replayMax, o.replayAge = tc.minEvents, tc.max, tc.age
			r := newRing()
			var model []*event // model[i] has id modelFirst+i
			modelFirst := uint64(1)
			rng := rand.New(rand.NewPCG(1, uint64(tc.minEvents)))
			at := int64(0)
			for step := range 5000 {
				if step%1700 == 1699 {
					to := r.next + uint64(rng.IntN(3*blockSize))
					r.skipTo(to)
					model, modelFirst = nil, to
				}
				// Bursts and pauses, so the age window grows and shrinks.
				if rng.IntN(50) == 0 {
					at += int64(100 * time.Millisecond)
				} else {
					at += int64(rng.IntN(int(time.Millisecond)))
				}
				ev := &event{at: at}
				for len(model) > 0 && (len(model) >= tc.max || (len(model) >= tc.minEvents && at-model[0].at >= int64(tc.age))) {
					model = model[1:]
					modelFirst++
				}
				model = append(model, ev)
				if id, want := r.push(ev, &o), modelFirst+uint64(len(model))-1; id != want {
					t.Fatalf("step %d: push got id %d, want %d", step, id, want)
				}
				if r.first != modelFirst || r.next != modelFirst+uint64(len(model)) {
					t.Fatalf("step %d: ring holds %d..%d, want %d..%d", step, r.first, r.next-1, modelFirst, modelFirst+uint64(len(model))-1)
				}
				for i, want := range model {
					if got := r.get(modelFirst + uint64(i)); got != want {
						t.Fatalf("step %d: id %d holds the wrong event", step, modelFirst+uint64(i))
					}
				}
				if r.get(r.first-1) != nil || r.get(r.next) != nil {
					t.Fatalf("step %d: ids outside the ring returned an event", step)
				}
			}
		})
	}
}

// TestRingFullWindowAllocatesNothing pins what the blocks are for: once a
// session's history has reached its window, the block eviction empties is
// the next one filled, so pushing allocates nothing.
func TestRingFullWindowAllocatesNothing(t *testing.T) {
	o := defaultOptions()
	o.replayEvents, o.replayMax, o.replayAge = 1024, 1024, 0
	r := newRing()
	ev := &event{}
	for range 3000 {
		r.push(ev, &o)
	}
	// A run is a block's worth of pushes: AllocsPerRun rounds down.
	if n := testing.AllocsPerRun(100, func() {
		for range blockSize {
			r.push(ev, &o)
		}
	}); n != 0 {
		t.Fatalf("push at a full window allocates %v times per %d events", n, blockSize)
	}
}
