package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// resumeWays are the two ways PROTOCOL.md gives a client to name the last
// event it saw.
var resumeWays = []struct {
	name string
	open func(h *harness, t *testing.T, sid string, last uint64) *ssetest.Stream
}{
	{"Last-Event-ID header", func(h *harness, t *testing.T, sid string, last uint64) *ssetest.Stream {
		return h.open(t, "/events?session="+sid, http.Header{"Last-Event-ID": {strconv.FormatUint(last, 10)}})
	}},
	{"lastEventId query", func(h *harness, t *testing.T, sid string, last uint64) *ssetest.Stream {
		return h.open(t, fmt.Sprintf("/events?session=%s&lastEventId=%d", sid, last), nil)
	}},
}

// expectResumed reads the session event of a resumed stream: it repeats the
// client's last id and says so.
func expectResumed(t *testing.T, s *ssetest.Stream, sid string, last uint64, channels []string) {
	t.Helper()
	m := s.Expect(t, protocol.EventSession)
	ev := ssetest.Decode[protocol.SessionEvent](t, m)
	if ssetest.ID(t, m) != last || !ev.Resumed || ev.Session != sid || !slices.Equal(ev.Channels, nonNil(channels)) {
		t.Fatalf("resumed session event id %s %+v, want id %d, resumed, session %s, channels %q", m.ID, ev, last, sid, channels)
	}
}

// TestResume: a client that drops its connection and comes back with the
// last id it saw gets every event it missed, in order, then the live stream.
func TestResume(t *testing.T) {
	for _, way := range resumeWays {
		t.Run(way.name, func(t *testing.T) {
			h := start(t)
			sid := h.newSession(t, "one")
			s := h.events(t, sid)
			s.Expect(t, protocol.EventSession)
			var got []protocol.Message
			for range 20 {
				got = append(got, s.Next(t))
			}
			ssetest.Consecutive(t, 1, got)
			last := ssetest.ID(t, got[len(got)-1])
			s.Close()

			// The server goes on while the client is away: chat, and ticks.
			other := h.newSession(t)
			chats := map[int64]bool{}
			for i := range 3 {
				chats[h.chat(t, other, "bob", fmt.Sprint("while away ", i))] = false
			}
			from := h.srv.Hub.Snapshot().TickDeliveries["one"]
			ssetest.Eventually(t, "20 more ticks", func() bool {
				return h.srv.Hub.Snapshot().TickDeliveries["one"] >= from+20
			})

			r := way.open(h, t, sid, last)
			expectResumed(t, r, sid, last, []string{"one"})
			var missed []protocol.Message
			ticks := 0
			for n := 0; n < len(chats) || ticks < 30; {
				m := r.Next(t)
				missed = append(missed, m)
				switch m.Name {
				case protocol.EventChat:
					c := ssetest.Decode[protocol.Chat](t, m)
					if seen, ok := chats[c.ID]; !ok || seen {
						t.Fatalf("chat %d: unexpected or twice", c.ID)
					}
					chats[c.ID] = true
					n++
				case "one":
					ticks++
				default:
					t.Fatalf("unexpected %s event", m.Name)
				}
			}
			ssetest.Consecutive(t, last+1, missed)
		})
	}
}

// TestReconnectWithoutLastEventID: a stream opened on a session without a
// Last-Event-ID continues after what the server wrote to the previous one.
func TestReconnectWithoutLastEventID(t *testing.T) {
	h := start(t)
	sid := h.newSession(t, "one")
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)
	last := ssetest.ID(t, s.Expect(t, "one"))
	for range 10 {
		last = ssetest.ID(t, s.Expect(t, "one"))
	}
	s.Close()
	// The server may have written more than we read before it saw us go.
	ssetest.Eventually(t, "the stream to detach", func() bool { return h.srv.Hub.StreamCount() == 0 })

	r := h.events(t, sid)
	m := r.Expect(t, protocol.EventSession)
	pos := ssetest.ID(t, m)
	if ev := ssetest.Decode[protocol.SessionEvent](t, m); ev.Resumed || pos < last {
		t.Fatalf("session event id %d %+v: want not resumed, position at least %d", pos, ev, last)
	}
	var next []protocol.Message
	for range 10 {
		next = append(next, r.Expect(t, "one"))
	}
	ssetest.Consecutive(t, pos+1, next)
}

// TestResumeBulk: a transfer interrupted by a reconnect continues from the
// first missing chunk and verifies.
func TestResumeBulk(t *testing.T) {
	for _, way := range resumeWays {
		t.Run(way.name, func(t *testing.T) {
			h := start(t)
			sid := h.newSession(t)
			s := h.events(t, sid)
			s.Expect(t, protocol.EventSession)
			const size, cut = 2 << 20, 15 // 43 chunks, cut after 15
			b := newBulkCheck(h.bulk(t, sid, fmt.Sprintf(`{"bytes":%d}`, size)), true)
			var got []protocol.Message
			for b.next < cut {
				m := s.Next(t)
				got = append(got, m)
				if !b.feed(t, m) {
					t.Fatalf("unexpected %s event", m.Name)
				}
			}
			ssetest.Consecutive(t, 1, got)
			last := ssetest.ID(t, got[len(got)-1])
			s.Close()

			r := way.open(h, t, sid, last)
			expectResumed(t, r, sid, last, nil)
			first := r.Expect(t, protocol.EventBulk)
			if ssetest.ID(t, first) != last+1 {
				t.Fatalf("first event after resume has id %s, want %d", first.ID, last+1)
			}
			b.feed(t, first) // checks it is chunk 15, the first we miss
			if others := b.readFrom(t, r); len(others) > 0 {
				t.Fatalf("unexpected %s event", others[0].Name)
			}
			if len(b.data) != size {
				t.Fatalf("reassembled %d bytes", len(b.data))
			}
		})
	}
}

// TestResumeGap: a resume that reaches past the replay window gets a gap
// with the number of events lost, whose id is the last one lost, then the
// events kept.
func TestResumeGap(t *testing.T) {
	const window = 16
	h := start(t, broadcast.WithReplay(window, 0, window), broadcast.WithChatRate(1000, 100))
	// Chat only, no channel: every event is counted.
	sid := h.newSession(t)
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)
	for i := range 3 {
		h.chat(t, sid, "ann", fmt.Sprint("seen ", i))
	}
	var seen []protocol.Message
	for range 3 {
		seen = append(seen, s.Expect(t, protocol.EventChat))
	}
	ssetest.Consecutive(t, 1, seen)
	s.Close()

	const away = 40
	for i := range away {
		h.chat(t, sid, "ann", fmt.Sprint("away ", i))
	}
	// Events 4..43 happened; the session keeps the last 16, 28..43.
	const last, total = 3, 3 + away
	const firstKept = total - window + 1
	for _, way := range resumeWays {
		t.Run(way.name, func(t *testing.T) {
			r := way.open(h, t, sid, last)
			expectResumed(t, r, sid, last, nil)
			g := r.Expect(t, protocol.EventGap)
			if id, missed := ssetest.ID(t, g), ssetest.Decode[protocol.Gap](t, g).Missed; id != firstKept-1 || missed != firstKept-1-last {
				t.Fatalf("gap id %d missed %d, want id %d missed %d", id, missed, firstKept-1, firstKept-1-last)
			}
			var kept []protocol.Message
			for i := firstKept; i <= total; i++ {
				m := r.Next(t)
				checkChat(t, m, int64(i), "ann", fmt.Sprint("away ", i-last-1), false)
				kept = append(kept, m)
			}
			ssetest.Consecutive(t, firstKept, kept)
			r.Close()
		})
	}
}

// TestStreamReplaced: a second stream on a session replaces the first, which
// gets bye "replaced" and ends; the second carries on from where the first
// was.
func TestStreamReplaced(t *testing.T) {
	for _, withID := range []bool{true, false} {
		t.Run(fmt.Sprint("Last-Event-ID ", withID), func(t *testing.T) {
			h := start(t)
			sid := h.newSession(t)
			a := h.events(t, sid)
			a.Expect(t, protocol.EventSession)
			for i := range 3 {
				h.chat(t, sid, "ann", fmt.Sprint(i))
			}
			var seen []protocol.Message
			for range 3 {
				seen = append(seen, a.Expect(t, protocol.EventChat))
			}
			ssetest.Consecutive(t, 1, seen)
			const last = 3

			var hdr http.Header
			if withID {
				hdr = http.Header{"Last-Event-ID": {strconv.Itoa(last)}}
			}
			b := h.open(t, "/events?session="+sid, hdr)
			bye, before := a.ExpectBye(t, protocol.ByeReplaced)
			if len(before) > 0 || ssetest.ID(t, bye) != last {
				t.Fatalf("replaced stream: %d events before bye, bye id %s; want none and id %d", len(before), bye.ID, last)
			}

			m := b.Expect(t, protocol.EventSession)
			if ssetest.ID(t, m) != last || ssetest.Decode[protocol.SessionEvent](t, m).Resumed != withID {
				t.Fatalf("second stream's session event id %s data %s, want id %d (where the first stream was)", m.ID, m.Data, last)
			}
			id := h.chat(t, sid, "bob", "after")
			next := b.Next(t)
			checkChat(t, next, id, "bob", "after", false)
			if ssetest.ID(t, next) != last+1 {
				t.Fatalf("second stream's first event has id %s, want %d: events the first stream delivered must not repeat", next.ID, last+1)
			}
		})
	}
}

// TestLateResumeRefused: a resume from before where the open stream
// started (a request stalled on its way, sent before the open stream's) gets
// 409 and leaves the open stream alone.
func TestLateResumeRefused(t *testing.T) {
	h := start(t)
	sid := h.newSession(t)
	h.chat(t, sid, "ann", "one")
	h.chat(t, sid, "ann", "two")
	live := h.open(t, "/events?session="+sid, http.Header{"Last-Event-ID": {"2"}})
	live.Expect(t, protocol.EventSession)
	before := h.srv.Hub.Snapshot()
	_, r := h.tryOpen(t, "/events?session="+sid, http.Header{"Last-Event-ID": {"1"}})
	ssetest.WantError(t, "late resume", r, http.StatusConflict)
	if after := h.srv.Hub.Snapshot(); after.Streams != before.Streams || after.Resumes != before.Resumes {
		t.Fatalf("the refused resume changed streams %d→%d, resumes %d→%d", before.Streams, after.Streams, before.Resumes, after.Resumes)
	}
	id := h.chat(t, sid, "bob", "still here")
	m := live.Next(t)
	checkChat(t, m, id, "bob", "still here", false)
	if ssetest.ID(t, m) != 3 {
		t.Fatalf("the open stream's next event has id %s, want 3", m.ID)
	}
}

// TestSessionTTL: a session without a stream expires after the TTL; one with
// an open stream does not.
func TestSessionTTL(t *testing.T) {
	const ttl = 200 * time.Millisecond
	h := start(t, broadcast.WithSessionTTL(ttl))
	idle := h.newSession(t)
	closed := h.newSession(t)
	live := h.newSession(t)
	c := h.events(t, closed)
	c.Expect(t, protocol.EventSession)
	c.Close()
	s := h.events(t, live)
	s.Expect(t, protocol.EventSession)
	opened := time.Now()

	// Setting the (empty) set again changes nothing, so it can poll.
	gone := func(sid string) func() bool {
		return func() bool {
			return h.post(t, "/sessions/"+sid+"/channels", `{"channels":[]}`).Status == http.StatusNotFound
		}
	}
	ssetest.Eventually(t, "the idle session to expire", gone(idle))
	ssetest.Eventually(t, "the session whose stream closed to expire", gone(closed))
	for _, sid := range []string{idle, closed} {
		for _, p := range []struct{ path, body string }{
			{"/channels", `{"channel":"one","on":true}`},
			{"/chat", `{"name":"x","text":"hello?"}`},
			{"/bulk", `{"bytes":1}`},
		} {
			ssetest.WantError(t, "POST to an expired session "+p.path, h.post(t, "/sessions/"+sid+p.path, p.body), http.StatusNotFound)
		}
		_, r := h.tryOpen(t, "/events?session="+sid, nil)
		ssetest.WantError(t, "GET /events of an expired session", r, http.StatusNotFound)
	}

	// The live session has outlived its TTL several times over.
	time.Sleep(5*ttl - time.Since(opened))
	if got := h.tune(t, live, `{"channel":"one","on":true}`); !slices.Equal(got, []string{"one"}) {
		t.Fatalf("tune the live session: %q", got)
	}
	s.Expect(t, protocol.EventTuned)
	s.Expect(t, "one")
}
