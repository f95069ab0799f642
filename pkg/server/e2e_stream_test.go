package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestEventsWithoutSession: a bare GET /events (curl) opens a fresh session,
// announces it first, after "retry: 2000", and stays quiet: nothing is tuned.
func TestEventsWithoutSession(t *testing.T) {
	h := start(t)
	s := h.open(t, "/events", nil)
	if cc := s.Response.Header.Get("Cache-Control"); !strings.Contains(cc, "no-cache") {
		t.Errorf("Cache-Control %q, want no-cache", cc)
	}
	m := s.Expect(t, protocol.EventSession)
	if head := s.Head(); !bytes.HasPrefix(head, []byte("retry: 2000\n")) {
		t.Fatalf("stream starts with %q, want retry: 2000", head)
	}
	if head := s.Head(); bytes.ContainsRune(head, '\r') {
		t.Fatalf("stream has CR line ends: %q", head)
	}
	if m.ID != "0" {
		t.Errorf("session event id %q, want 0 on a new session", m.ID)
	}
	ev := ssetest.Decode[protocol.SessionEvent](t, m)
	if !sessionIDPattern.MatchString(ev.Session) || ev.Resumed || len(ev.Channels) != 0 {
		t.Fatalf("session event %+v, want a new 128-bit id, no channel, not resumed", ev)
	}
	// The only negative check on time in this package, and a short one: no
	// channel is tuned, so nothing may arrive.
	if a, err := s.Recv(300 * time.Millisecond); err != ssetest.ErrTimeout {
		t.Fatalf("quiet stream got %s %q (err %v)", a.Name, a.Data, err)
	}

	// The announced session is a real one: tuning it reaches this stream.
	if got := h.tune(t, ev.Session, `{"channel":"three","on":true}`); !slices.Equal(got, []string{"three"}) {
		t.Fatalf("tune: %q", got)
	}
	tuned := s.Expect(t, protocol.EventTuned)
	if ssetest.ID(t, tuned) != 1 {
		t.Errorf("first event after the session event has id %s, want 1", tuned.ID)
	}
	s.Expect(t, "three")

	// POST /sessions, then its stream: a session event at position 0 too.
	sid := h.newSession(t)
	s2 := h.events(t, sid)
	m2 := s2.Expect(t, protocol.EventSession)
	if ev2 := ssetest.Decode[protocol.SessionEvent](t, m2); m2.ID != "0" || ev2.Session != sid || ev2.Resumed {
		t.Fatalf("session event id %s %+v, want id 0 for session %s", m2.ID, ev2, sid)
	}
	if a, err := s2.Recv(300 * time.Millisecond); err != ssetest.ErrTimeout {
		t.Fatalf("quiet stream got %s %q (err %v)", a.Name, a.Data, err)
	}

	// A session created tuned streams its channel from the first event.
	sid3 := h.newSession(t, "two")
	s3 := h.events(t, sid3)
	if ev3 := ssetest.Decode[protocol.SessionEvent](t, s3.Expect(t, protocol.EventSession)); !slices.Equal(ev3.Channels, []string{"two"}) {
		t.Fatalf("session event channels %q, want [two]", ev3.Channels)
	}
	ssetest.Consecutive(t, 1, []protocol.Message{s3.Expect(t, "two"), s3.Expect(t, "two")})
}

// TestPing: a quiet stream gets ": ping" comments, which clients ignore.
func TestPing(t *testing.T) {
	h := start(t, broadcast.WithPingInterval(50*time.Millisecond))
	s := h.events(t, h.newSession(t))
	s.Expect(t, protocol.EventSession)
	ssetest.Eventually(t, "a ping comment", func() bool { return bytes.Contains(s.Head(), []byte("\n\n: ping\n\n")) })
	if a, err := s.Recv(0); err != ssetest.ErrTimeout {
		t.Fatalf("a ping dispatched an event: %s %q (err %v)", a.Name, a.Data, err)
	}
}

// TestTuneOnOpenStream: tuning takes effect on the live stream, is
// idempotent, and a whole set (or none) can be given at once.
func TestTuneOnOpenStream(t *testing.T) {
	h := start(t)
	sid := h.newSession(t)
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)
	var seen []protocol.Message // every event after the session event

	// Tuning in twice: one tuned event, one subscription.
	for range 2 {
		if got := h.tune(t, sid, `{"channel":"one","on":true}`); !slices.Equal(got, []string{"one"}) {
			t.Fatalf("tune one on: %q", got)
		}
	}
	before := h.srv.Hub.Snapshot()
	tuned := s.Expect(t, protocol.EventTuned)
	seen = append(seen, tuned)
	if got := ssetest.Decode[protocol.Tuned](t, tuned).Channels; !slices.Equal(got, []string{"one"}) {
		t.Fatalf("tuned event %q, want [one]", got)
	}
	for range 30 {
		seen = append(seen, s.Expect(t, "one"))
	}
	after := h.srv.Hub.Snapshot()
	// One listener tuned once: each tick is delivered once (give or take
	// the tick being counted while a snapshot was read).
	ticks := after.Ticks["one"] - before.Ticks["one"]
	deliveries := after.TickDeliveries["one"] - before.TickDeliveries["one"]
	if deliveries > ticks+1 {
		t.Fatalf("%d ticks of one delivered %d times to one session tuned twice: a double subscription", ticks, deliveries)
	}

	// Tune out: after the tuned event, no tick of one.
	if got := h.tune(t, sid, `{"channel":"one","on":false}`); len(got) != 0 {
		t.Fatalf("tune one off: %q", got)
	}
	off, mid := s.Until(t, "tuned []", func(m protocol.Message) bool { return m.Name == protocol.EventTuned })
	seen = append(append(seen, mid...), off)
	if got := ssetest.Decode[protocol.Tuned](t, off).Channels; got == nil || len(got) != 0 {
		t.Fatalf("tuned event after tuning out %q, want []", got)
	}
	// Tuning out twice changes nothing and announces nothing.
	h.tune(t, sid, `{"channel":"one","on":false}`)
	id := h.chat(t, sid, "", "marker 1")
	mark, between := untilChat(t, s, id)
	seen = append(append(seen, between...), mark)
	if len(between) != 0 {
		t.Fatalf("after tuning out, before the next chat: %d events, first %s", len(between), between[0].Name)
	}
	if tunedEvents := countName(seen, protocol.EventTuned); tunedEvents != 2 {
		t.Fatalf("%d tuned events for two changes (and two no-ops)", tunedEvents)
	}

	// Replace the set: the answer and the event list the hub's order.
	if got := h.tune(t, sid, `{"channels":["three","two"]}`); !slices.Equal(got, []string{"two", "three"}) {
		t.Fatalf("set [three two]: %q, want [two three]", got)
	}
	set := s.Expect(t, protocol.EventTuned)
	seen = append(seen, set)
	if got := ssetest.Decode[protocol.Tuned](t, set).Channels; !slices.Equal(got, []string{"two", "three"}) {
		t.Fatalf("tuned event %q, want [two three]", got)
	}
	names := map[string]int{}
	for names["two"] == 0 || names["three"] == 0 {
		m := s.Next(t)
		seen = append(seen, m)
		if m.Name != "two" && m.Name != "three" {
			t.Fatalf("tuned to two and three, got %s", m.Name)
		}
		names[m.Name]++
	}
	// The same set again is no change.
	h.tune(t, sid, `{"channels":["two","three"]}`)
	// And the empty set tunes everything out.
	if got := h.tune(t, sid, `{"channels":[]}`); got == nil || len(got) != 0 {
		t.Fatalf("set []: %q", got)
	}
	none, mid := s.Until(t, "tuned []", func(m protocol.Message) bool { return m.Name == protocol.EventTuned })
	seen = append(append(seen, mid...), none)
	for _, m := range mid {
		if m.Name != "two" && m.Name != "three" {
			t.Fatalf("tuned to two and three, got %s", m.Name)
		}
	}
	if got := ssetest.Decode[protocol.Tuned](t, none).Channels; got == nil || len(got) != 0 {
		t.Fatalf("tuned event %q, want []", got)
	}
	id = h.chat(t, sid, "", "marker 2")
	mark, between = untilChat(t, s, id)
	seen = append(append(seen, between...), mark)
	if len(between) != 0 {
		t.Fatalf("tuned to nothing, before the next chat: %d events, first %s", len(between), between[0].Name)
	}
	if n := countName(seen, protocol.EventTuned); n != 4 {
		t.Fatalf("%d tuned events, want 4 (one per change)", n)
	}
	// Every id once, in order, from 1: no duplicate tick, no hole.
	ssetest.Consecutive(t, 1, seen)
}

func countName(ms []protocol.Message, name string) int {
	n := 0
	for _, m := range ms {
		if m.Name == name {
			n++
		}
	}
	return n
}

// TestChannelTicksShared: a channel's ticks are a broadcast; two listeners
// see the same characters in the same order.
func TestChannelTicksShared(t *testing.T) {
	h := start(t, broadcast.WithChannels(fastChannels(250)...))
	// Both sessions are created tuned, back to back; their ticks queue up
	// from then on, however long the streams take to open.
	sids := [2]string{h.newSession(t, "one"), h.newSession(t, "one")}
	var streams [2]*ssetest.Stream
	for i := range streams {
		streams[i] = h.events(t, sids[i])
		streams[i].Expect(t, protocol.EventSession)
	}
	// The second session was tuned a moment later: its ticks are a run of
	// the first one's, from some offset on.
	const n = 100
	read := func(s *ssetest.Stream, k int) string {
		var b strings.Builder
		for range k {
			b.WriteString(s.Expect(t, "one").Data + "|")
		}
		return b.String()
	}
	a := read(streams[0], 2*n)
	b := read(streams[1], n)
	if !strings.Contains(a, b) {
		t.Fatalf("the second listener's %d ticks are not a run of the first's:\nfirst  %s\nsecond %s", n, a, b)
	}
}

// TestChannelRepertoires: GET /channels describes the channels, and every
// character each one sends is safe, assigned, of the announced width and in
// the announced repertoire.
func TestChannelRepertoires(t *testing.T) {
	h := start(t, broadcast.WithChannels(fastChannels(200)...))
	r := h.get(t, "/channels")
	if r.Status != http.StatusOK {
		t.Fatalf("GET /channels: %d %s", r.Status, r.Body)
	}
	chans := ssetest.DecodeReply[[]protocol.Channel](t, "GET /channels", r)
	wantWidth := map[string]int{"one": 1, "two": 2, "three": 1}
	if len(chans) != 3 {
		t.Fatalf("GET /channels: %d channels, want 3", len(chans))
	}
	repertoire := map[string]map[rune]bool{}
	for i, c := range chans {
		if want := []string{"one", "two", "three"}[i]; c.Name != want {
			t.Fatalf("channel %d is %q, want %q", i, c.Name, want)
		}
		if c.Width != wantWidth[c.Name] || c.Rate != 200 || c.Title == "" || c.Repertoire == "" {
			t.Errorf("channel %+.80v: want width %d, rate 200, a title and a repertoire", c, wantWidth[c.Name])
		}
		repertoire[c.Name] = map[rune]bool{}
		for _, ch := range c.Repertoire {
			checkRune(t, c.Name, "announced", ch, c.Width)
			repertoire[c.Name][ch] = true
		}
	}

	s := h.events(t, h.newSession(t, "one", "two", "three"))
	s.Expect(t, protocol.EventSession)
	const want = 300
	got := map[string]int{}
	for got["one"] < want || got["two"] < want || got["three"] < want {
		m := s.Next(t)
		rep, ok := repertoire[m.Name]
		if !ok {
			t.Fatalf("unexpected event %s", m.Name)
		}
		if m.Data == "" || !utf8.ValidString(m.Data) {
			t.Fatalf("channel %s sent %q: want one or more characters of valid UTF-8", m.Name, m.Data)
		}
		for _, ch := range m.Data {
			checkRune(t, m.Name, "sent", ch, wantWidth[m.Name])
			if !rep[ch] {
				t.Fatalf("channel %s sent U+%04X, which its repertoire does not announce", m.Name, ch)
			}
		}
		got[m.Name]++
	}
}

// checkRune applies PROTOCOL.md's rules for a channel's characters.
func checkRune(t *testing.T, channel, what string, r rune, width int) {
	t.Helper()
	bad := func(why string) {
		t.Fatalf("channel %s %s U+%04X %q: %s", channel, what, r, r, why)
	}
	switch {
	case !protocol.SafeRune(r):
		bad("not protocol.SafeRune")
	case unicode.In(r, unicode.Cc, unicode.Cf, unicode.Mn, unicode.Me, unicode.Co, unicode.Cs):
		bad("a control, format, combining, private-use or surrogate code point")
	case !unicode.In(r, unicode.L, unicode.N, unicode.P, unicode.S):
		bad("not an assigned letter, number, punctuation or symbol")
	case protocol.RuneWidth(r) != width:
		bad(fmt.Sprintf("%d cells wide, the channel says %d", protocol.RuneWidth(r), width))
	}
}

// TestStaticAndProbes: the page, the liveness probe and the metrics.
func TestStaticAndProbes(t *testing.T) {
	h := start(t)
	// One open stream and a tick or two, so the metrics have something.
	s := h.events(t, h.newSession(t, "one"))
	s.Expect(t, protocol.EventSession)
	s.Expect(t, "one")

	r := h.get(t, "/")
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %q", r.Status, r.Header.Get("Content-Type"))
	}
	if !bytes.Contains(bytes.ToLower(r.Body), []byte("<html")) {
		t.Fatalf("GET /: no <html in %.200q", r.Body)
	}
	// The header's policy and the page's meta tag are one policy, the
	// header adding only what a meta tag cannot carry.
	meta := regexp.MustCompile(`http-equiv="Content-Security-Policy" content="([^"]*)"`).FindSubmatch(r.Body)
	if meta == nil {
		t.Fatal("GET /: the page has no Content-Security-Policy meta tag")
	}
	if got, want := r.Header.Get("Content-Security-Policy"), string(meta[1])+"; frame-ancestors 'none'"; got != want {
		t.Errorf("GET /: Content-Security-Policy header\n%s\nthe page's meta tag (and frame-ancestors)\n%s", got, want)
	}
	r = h.get(t, "/healthz")
	if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != "ok" {
		t.Fatalf("GET /healthz: %d %q", r.Status, r.Body)
	}
	r = h.get(t, "/metrics")
	if r.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", r.Status)
	}
	for _, want := range []string{"\nxhrsse_streams 1\n", `xhrsse_channel_ticks_total{channel="one"}`} {
		if !strings.Contains("\n"+string(r.Body), want) {
			t.Errorf("GET /metrics lacks %q", strings.TrimSpace(want))
		}
	}
}
