package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// chatWire is a chat event's data with "at" kept as the string sent, to check
// its format.
type chatWire struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Text    string `json:"text"`
	At      string `json:"at"`
	History bool   `json:"history"`
}

func checkChat(t *testing.T, m protocol.Message, id int64, name, text string, history bool) {
	t.Helper()
	if m.Name != protocol.EventChat {
		t.Fatalf("got %s %.100q, want chat %d", m.Name, m.Data, id)
	}
	c := ssetest.Decode[chatWire](t, m)
	if c.ID != id || c.Name != name || c.Text != text || c.History != history {
		t.Fatalf("chat %+v, want id %d name %q text %q history %v", c, id, name, text, history)
	}
	at, err := time.Parse(time.RFC3339, c.At)
	if err != nil {
		t.Fatalf("chat at %q is not RFC 3339: %v", c.At, err)
	}
	if d := time.Since(at); d < -time.Minute || d > time.Minute {
		t.Fatalf("chat at %v is %v away from now", at, d)
	}
}

// TestChatFanOut: a chat reaches every open stream, in one order, as data
// (markup and escapes untouched); a new session's stream starts with the
// history, marked as such.
func TestChatFanOut(t *testing.T) {
	h := start(t)
	type msg struct{ name, text string }
	msgs := []msg{
		{"ann", `<b>hi</b> & <script>alert(1)</script>`},
		{"bob", "\x1b[2J\x1b]0;owned\x07 bell and clear"},
		{"", "日本語 é \u200f rtl mark, tab\there"}, // no name: "anon"
	}
	var sids [3]string
	var streams [3]*ssetest.Stream
	for i := range sids {
		sids[i] = h.newSession(t)
		streams[i] = h.events(t, sids[i])
		streams[i].Expect(t, protocol.EventSession)
	}
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = h.chat(t, sids[i], m.name, m.text)
		if i > 0 && ids[i] <= ids[i-1] {
			t.Fatalf("chat ids %v not increasing", ids[:i+1])
		}
	}
	want := func(i int) (string, string) {
		if msgs[i].name == "" {
			return "anon", msgs[i].text
		}
		return msgs[i].name, msgs[i].text
	}
	for k, s := range streams {
		for i := range msgs {
			m := s.Next(t)
			name, text := want(i)
			checkChat(t, m, ids[i], name, text, false)
			if ssetest.ID(t, m) != uint64(i+1) {
				t.Fatalf("stream %d: chat %d has event id %s, want %d", k, i, m.ID, i+1)
			}
		}
	}

	// A new session: the history first, in order, marked, then live.
	late := h.newSession(t)
	s := h.events(t, late)
	s.Expect(t, protocol.EventSession)
	for i := range msgs {
		name, text := want(i)
		checkChat(t, s.Next(t), ids[i], name, text, true)
	}
	id := h.chat(t, late, "dee", "live")
	m := s.Next(t)
	checkChat(t, m, id, "dee", "live", false)
	if ssetest.ID(t, m) != uint64(len(msgs)+1) {
		t.Fatalf("live chat after history has id %s, want %d", m.ID, len(msgs)+1)
	}
	for _, old := range streams {
		m, _ := untilChat(t, old, id)
		checkChat(t, m, id, "dee", "live", false)
	}
}

// TestChatHistoryLimit: after more than 50 chats, a new session gets the last
// 50 only, in order, then the live stream.
func TestChatHistoryLimit(t *testing.T) {
	h := start(t, broadcast.WithChatRate(1000, 100))
	sid := h.newSession(t)
	live := h.events(t, sid)
	live.Expect(t, protocol.EventSession)
	const total = protocol.ChatHistory + 12
	ids := make([]int64, total)
	for i := range ids {
		ids[i] = h.chat(t, sid, "ann", fmt.Sprint("message ", i))
	}
	var got []protocol.Message
	for i := range ids {
		m := live.Next(t)
		checkChat(t, m, ids[i], "ann", fmt.Sprint("message ", i), false)
		got = append(got, m)
	}
	ssetest.Consecutive(t, 1, got)

	// Both ways of opening a session get the same history, then the live
	// stream: the next event after the 50 is a chat posted afterwards.
	sidB := h.newSession(t)
	opened := []*ssetest.Stream{h.events(t, sidB), h.open(t, "/events", nil)}
	for _, s := range opened {
		s.Expect(t, protocol.EventSession)
	}
	id := h.chat(t, sidB, "bob", "after")
	for k, s := range opened {
		hist := make([]protocol.Message, 0, protocol.ChatHistory)
		for i := total - protocol.ChatHistory; i < total; i++ {
			m := s.Next(t)
			checkChat(t, m, ids[i], "ann", fmt.Sprint("message ", i), true)
			hist = append(hist, m)
		}
		ssetest.Consecutive(t, 1, hist)
		m := s.Next(t)
		checkChat(t, m, id, "bob", "after", false)
		if ssetest.ID(t, m) != protocol.ChatHistory+1 {
			t.Fatalf("stream %d: live chat after the history has id %s, want %d", k, m.ID, protocol.ChatHistory+1)
		}
	}
}

// TestChatWhileAway: a session with no stream yet still gets every chat,
// once, when its stream opens: live (not as history), after the history it
// was created with.
func TestChatWhileAway(t *testing.T) {
	h := start(t)
	a := h.newSession(t)
	old := h.chat(t, a, "ann", "before b")
	b := h.newSession(t)
	id := h.chat(t, a, "ann", "while b is away")
	s := h.events(t, b)
	s.Expect(t, protocol.EventSession)
	checkChat(t, s.Next(t), old, "ann", "before b", true)
	checkChat(t, s.Next(t), id, "ann", "while b is away", false)
	last := h.chat(t, b, "bob", "back")
	m := s.Next(t)
	checkChat(t, m, last, "bob", "back", false)
	if ssetest.ID(t, m) != 3 {
		t.Fatalf("third event has id %s", m.ID)
	}
}
