package broadcast

import (
	"context"
	"strconv"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func TestResumeAndGap(t *testing.T) {
	h := quietHub(t, WithReplay(8, 0, 8))
	s, _ := h.NewSession([]string{"one"})
	ctx, cancel := context.WithCancel(context.Background())
	st, _ := h.Attach(s, Position{})
	c := testStream(t, ctx, st)
	next(t, c)
	for i := range 3 {
		tick(h, 0, strconv.Itoa(i))
		next(t, c)
	}
	cancel()
	for range c {
	}
	for i := 3; i < 6; i++ {
		tick(h, 0, strconv.Itoa(i))
	}

	// Resume after id 2: ids 3..7 follow (7 is a tick sent after the resume).
	last := uint64(2)
	ctx2, cancel2 := context.WithCancel(context.Background())
	st2, _ := h.Attach(s, Position{LastID: &last})
	c2 := testStream(t, ctx2, st2)
	if m := next(t, c2); m.Name != protocol.EventSession || m.ID != "2" || m.Data != `{"session":"`+s.ID()+`","channels":["one"],"resumed":true}` {
		t.Fatalf("session event %+v", m)
	}
	for want := 3; want <= 7; want++ {
		if want == 7 {
			tick(h, 0, "live")
		}
		if m := next(t, c2); m.ID != strconv.Itoa(want) || m.Name != "one" {
			t.Fatalf("got %+v, want id %d", m, want)
		}
	}
	cancel2()
	for range c2 {
	}

	// 20 more ticks (8..27) while away: the ring keeps 20..27, so 12 are missed.
	for i := range 20 {
		tick(h, 0, strconv.Itoa(i))
	}
	last = 7
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	st3, _ := h.Attach(s, Position{LastID: &last})
	c3 := testStream(t, ctx3, st3)
	next(t, c3)
	m := next(t, c3)
	if m.Name != protocol.EventGap || m.Data != `{"missed":12}` || m.ID != "19" {
		t.Fatalf("got %+v, want gap of 12 with id 19", m)
	}
	for want := 20; want <= 27; want++ {
		if m := next(t, c3); m.ID != strconv.Itoa(want) {
			t.Fatalf("got %+v, want id %d", m, want)
		}
	}
}

func TestReplaceStream(t *testing.T) {
	h := quietHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := h.NewSession([]string{"one"})
	st1, _ := h.Attach(s, Position{})
	c1 := testStream(t, ctx, st1)
	next(t, c1)
	tick(h, 0, "a")
	next(t, c1)
	st2, _ := h.Attach(s, Position{})
	c2 := testStream(t, ctx, st2)
	if m := next(t, c1); m.Name != protocol.EventBye || m.Data != `{"reason":"replaced"}` || m.ID != "1" {
		t.Fatalf("old stream got %+v, want bye replaced at id 1", m)
	}
	if _, ok := <-c1; ok {
		t.Fatal("old stream went on after bye")
	}
	// The new stream, without Last-Event-ID, continues after what the old one wrote.
	if m := next(t, c2); m.Name != protocol.EventSession || m.ID != "1" {
		t.Fatalf("new stream got %+v", m)
	}
	tick(h, 0, "b")
	if m := next(t, c2); m.ID != "2" || m.Data != "b" {
		t.Fatalf("new stream got %+v", m)
	}
}
