package broadcast

import (
	"context"
	"sync"
	"time"
)

// A flushWheel is the one timer behind every stream's flush interval. A
// stream that wrote less than the interval ago is not woken by a new tick:
// its wake is put on the wheel at the time its next write is due, and the
// wheel's goroutine wakes, a slot at a time, every stream whose time has
// come. So a stream tuned to every default channel wakes about as often as
// it writes (5 times a second), instead of once per tick instant (8) plus
// once per timer of its own (5), and the runtime's timer heap holds one
// timer instead of one per stream.
//
// A wake may come early (a wheel that fell behind, a lap too short for the
// wait); the stream checks its time again and goes back on the wheel. It
// never comes later than one slot after the time asked for.
type flushWheel struct {
	slot time.Duration // width of a slot

	mu    sync.Mutex
	slots [][]*Stream // guarded by mu; slot k%len(slots) holds the wakes due in slot k
	done  int64       // guarded by mu; the last slot number fired
}

func newFlushWheel(interval time.Duration) *flushWheel {
	slot := max(interval/8, time.Millisecond)
	w := &flushWheel{slot: slot, slots: make([][]*Stream, int(interval/slot)+2)}
	w.done = time.Now().UnixNano() / int64(slot)
	return w
}

// add puts st's wake on the wheel for unix time due (nanoseconds). The
// caller has set st.onWheel; the wheel clears it when it wakes st.
func (w *flushWheel) add(st *Stream, due int64) {
	k := (due + int64(w.slot) - 1) / int64(w.slot)
	w.mu.Lock()
	// A wake further ahead than one lap goes in the lap's last slot: early,
	// so the stream puts itself back.
	k = min(max(k, w.done+1), w.done+int64(len(w.slots))-1)
	i := k % int64(len(w.slots))
	w.slots[i] = append(w.slots[i], st)
	w.mu.Unlock()
}

// run fires the slots as they fall due until ctx ends, each stream's wake
// once no urgent fan-out is under way (gate). Runs in its own goroutine.
func (w *flushWheel) run(ctx context.Context, gate *urgentGate) {
	t := time.NewTicker(w.slot)
	defer t.Stop()
	var due []*Stream // reused: the wakes of one firing
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			gate.wait(ctx)
			due = w.take(time.Now().UnixNano()/int64(w.slot), due[:0])
			eachParallel(due, func(st *Stream) {
				gate.wait(ctx)
				st.onWheel.Store(false)
				st.flushDue()
			})
			clear(due) // let ended streams go
		}
	}
}

// take empties the slots up to slot number upTo into due.
func (w *flushWheel) take(upTo int64, due []*Stream) []*Stream {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := w.done + 1; k <= upTo && k <= w.done+int64(len(w.slots)); k++ {
		i := k % int64(len(w.slots))
		due = append(due, w.slots[i]...)
		clear(w.slots[i])
		w.slots[i] = w.slots[i][:0]
	}
	w.done = max(w.done, upTo)
	return due
}
