package broadcast

import (
	"testing"
	"time"
)

func TestTickScheduleIsSharedAndDeterministic(t *testing.T) {
	cs := DefaultChannelsAt(5, 3, 2)
	var seed, other [32]byte
	seed[0], other[0] = 1, 2
	for i := range cs {
		c := &channel{ChannelConfig: cs[i], index: i}
		now := time.Now()
		k := c.tickAfter(now)
		at := c.tickTime(k)
		if !at.After(now) || at.Sub(now) > time.Duration(float64(time.Second)/c.Rate)+time.Millisecond {
			t.Fatalf("%s: next tick %v after %v", c.Name, at, now)
		}
		if c.tickTime(k - 1).After(now) {
			t.Fatalf("%s: tick %d also falls after %v", c.Name, k-1, now)
		}
		// Same seed, channel and tick: same character, on any hub.
		same, differ := 0, 0
		for j := range int64(200) {
			if c.draw(&seed, k+j) != c.draw(&seed, k+j) {
				t.Fatalf("%s: tick %d drawn twice differently", c.Name, k+j)
			}
			if c.draw(&seed, k+j) == c.draw(&other, k+j) {
				same++
			}
			if c.draw(&seed, k+j) != c.draw(&seed, k+j+1) {
				differ++
			}
		}
		// With 40+ characters, another seed agrees ~1 in 40 times.
		if same > 40 || differ < 150 {
			t.Fatalf("%s: other seed agreed %d/200, neighbours differed %d/200", c.Name, same, differ)
		}
	}
	// Different channels draw differently from the same seed.
	a := &channel{ChannelConfig: cs[0], index: 0}
	b := &channel{ChannelConfig: cs[0], index: 1}
	same := 0
	for k := range int64(200) {
		if a.draw(&seed, k) == b.draw(&seed, k) {
			same++
		}
	}
	if same > 40 {
		t.Fatalf("channels 0 and 1 agree %d/200 times", same)
	}
}

// Ticks that fall due together reach a session in one batch: consecutive
// ids, one of each channel it is tuned to.
func TestTicksDueTogetherPushedOnce(t *testing.T) {
	h := quietHub(t)
	a, _ := h.NewSession([]string{"one", "three"})
	b, _ := h.NewSession([]string{"two"})
	c, _ := h.NewSession(nil)
	due := []dueTick{
		{c: h.channels[0], ev: &event{body: []byte("event: one\ndata: x\n\n")}},
		{c: h.channels[1], ev: &event{body: []byte("event: two\ndata: y\n\n")}},
		{c: h.channels[2], ev: &event{body: []byte("event: three\ndata: z\n\n")}},
	}
	h.deliverTicks(due)
	for _, tc := range []struct {
		s    *Session
		want []string
	}{{a, []string{"x", "z"}}, {b, []string{"y"}}, {c, nil}} {
		tc.s.mu.Lock()
		var got []string
		for id := tc.s.ring.first; id < tc.s.ring.next; id++ {
			body := string(tc.s.ring.get(id).body)
			got = append(got, body[len(body)-3:len(body)-2])
		}
		tc.s.mu.Unlock()
		if len(got) != len(tc.want) || (len(got) > 0 && (got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1])) {
			t.Errorf("session tuned to %v got %q, want %q", tc.s.Channels(), got, tc.want)
		}
	}
	snap := h.Snapshot()
	if snap.TickDeliveries["one"] != 1 || snap.TickDeliveries["two"] != 1 || snap.TickDeliveries["three"] != 1 {
		t.Fatalf("deliveries %v", snap.TickDeliveries)
	}
}
