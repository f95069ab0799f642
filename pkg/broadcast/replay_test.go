package broadcast

import (
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

func TestBucket(t *testing.T) {
	var b bucket
	b.init(2, 3)
	now := time.Now()
	for i := range 3 {
		if ok, _ := b.take(now); !ok {
			t.Fatalf("burst token %d refused", i)
		}
	}
	ok, wait := b.take(now)
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("4th take: ok=%v wait=%v, want refused with wait <= 500ms", ok, wait)
	}
	if ok, _ := b.take(now.Add(500 * time.Millisecond)); !ok {
		t.Fatal("token not refilled after 1/rate")
	}
}
