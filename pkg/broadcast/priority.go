package broadcast

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Chat goes out first. A chat's fan-out writes every listening stream at
// once, one write each, and at thousands of streams that is tens to hundreds
// of milliseconds of the kernel's time, the chat's latency. The flush
// wheel's and the ticks' writes made meanwhile only lengthen it, though none
// of them is urgent, and the chat's own write to a stream carries that
// stream's waiting ticks anyway. So while an urgent fan-out is under way the
// wheel waits, and a tick's fan-out leaves its writes to the wheel.

// An urgentGate tells the writes that can wait whether an urgent fan-out is
// under way. They ask before each stream's write, so one that began first
// steps aside as soon as the urgent one begins.
type urgentGate struct {
	n     atomic.Int32  // urgent fan-outs under way
	mu    sync.Mutex    // orders begin and end against wait
	clear chan struct{} // guarded by mu: closed when n drops to 0
}

// begin marks an urgent fan-out under way until end.
func (g *urgentGate) begin() {
	g.mu.Lock()
	if g.n.Add(1) == 1 {
		g.clear = make(chan struct{})
	}
	g.mu.Unlock()
}

func (g *urgentGate) end() {
	g.mu.Lock()
	if g.n.Add(-1) == 0 {
		close(g.clear)
	}
	g.mu.Unlock()
}

// busy reports whether an urgent fan-out is under way.
func (g *urgentGate) busy() bool { return g.n.Load() > 0 }

// wait returns once no urgent fan-out is under way, or ctx ended.
func (g *urgentGate) wait(ctx context.Context) {
	if !g.busy() {
		return
	}
	g.mu.Lock()
	clear, busy := g.clear, g.busy()
	g.mu.Unlock()
	if !busy {
		return
	}
	select {
	case <-clear:
	case <-ctx.Done():
	}
}

// writeUrgent is writeDirect for an urgent fan-out (a chat): the writes
// that can wait, wait for it.
func (h *Hub) writeUrgent(sts *[]*Stream) {
	h.urgent.begin()
	defer h.urgent.end()
	writeDirect(sts)
}

// writeTicks is writeDirect for a tick's fan-out: a stream it comes to
// while an urgent fan-out is under way goes on the flush wheel instead, due
// now.
func (h *Hub) writeTicks(sts *[]*Stream) {
	if h.wheel == nil {
		writeDirect(sts)
		return
	}
	eachParallel(*sts, func(st *Stream) {
		if !h.urgent.busy() {
			st.writeDirect()
		} else {
			st.toWheel(time.Now().UnixNano())
		}
	})
	putDirect(sts)
}
