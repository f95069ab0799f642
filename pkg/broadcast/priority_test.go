package broadcast

import (
	"context"
	"testing"
	"time"
)

// The gate is busy from the first begin to the last end, and wait returns
// only then.
func TestUrgentGate(t *testing.T) {
	var g urgentGate
	if g.busy() {
		t.Fatal("a new gate is busy")
	}
	g.wait(context.Background()) // returns at once
	g.begin()
	g.begin()
	waited := make(chan struct{})
	go func() {
		g.wait(context.Background())
		close(waited)
	}()
	g.end()
	if !g.busy() {
		t.Fatal("not busy with one fan-out still under way")
	}
	select {
	case <-waited:
		t.Fatal("wait returned with a fan-out under way")
	case <-time.After(20 * time.Millisecond):
	}
	g.end()
	<-waited
	if g.busy() {
		t.Fatal("busy after the last end")
	}
}

// The wheel wakes no stream while an urgent fan-out is under way, and wakes
// those due once it is over.
func TestWheelWaitsForUrgentFanOut(t *testing.T) {
	w := newFlushWheel(200 * time.Millisecond) // 25 ms slots
	var g urgentGate
	g.begin()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, &g)
	}()
	defer func() {
		cancel()
		<-done
	}()
	st := &Stream{wakeC: make(chan struct{}, 1)} // not direct: the wheel signals it
	st.onWheel.Store(true)
	w.add(st, time.Now().UnixNano())
	select {
	case <-st.wakeC:
		t.Fatal("woken during an urgent fan-out")
	case <-time.After(4 * w.slot):
	}
	g.end()
	select {
	case <-st.wakeC:
	case <-time.After(10 * time.Second):
		t.Fatal("not woken after the urgent fan-out")
	}
}
