package broadcast

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// fakeRelay joins hubs in-process: chat is numbered here and delivered to
// every hub; session changes are kept.
type fakeRelay struct {
	mu      sync.Mutex
	id      int64
	hubs    []*Hub
	changes map[string]SessionChange
}

func (r *fakeRelay) PublishChat(_ context.Context, msg protocol.Chat) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.id++
	msg.ID = r.id
	for _, h := range r.hubs {
		h.Deliver(msg)
	}
	return r.id, nil
}

func (r *fakeRelay) SessionChanged(c SessionChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changes == nil {
		r.changes = map[string]SessionChange{}
	}
	r.changes[c.ID] = c
}

func (r *fakeRelay) change(id string) SessionChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changes[id]
}

func relayedHubs(t *testing.T, n int) (*fakeRelay, []*Hub) {
	r := &fakeRelay{}
	var seed [32]byte
	seed[0] = 7
	for range n {
		r.hubs = append(r.hubs, quietHub(t, WithRelay(r), WithSeed(seed), WithChatRate(1000, 1000)))
	}
	return r, r.hubs
}

// A session exported with its history, transfers and position resumes on
// another hub exactly where it was, and is gone from the first.
func TestExportImportResumesWithoutLoss(t *testing.T) {
	_, hubs := relayedHubs(t, 2)
	a, b := hubs[0], hubs[1]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := a.NewSession([]string{"one"})
	st, _ := a.Attach(s, Position{})
	c := testStream(t, ctx, st)
	next(t, c) // session
	tick(a, 0, "p")
	if m := next(t, c); m.ID != "1" {
		t.Fatalf("first tick id %s", m.ID)
	}
	// Events the client has not read yet, a transfer under way and a chat.
	tick(a, 0, "q")
	n := int64(3*protocol.BulkChunkSize + 5)
	acc, err := s.Bulk(protocol.BulkPost{Bytes: &n})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Chat(ctx, s, "ann", "hello"); err != nil {
		t.Fatal(err)
	}

	state, err := a.Export(s.ID(), 1<<20, Position{})
	if err != nil {
		t.Fatal(err)
	}
	if m := next(t, c, "one", "bulk", "chat", "bulk-end"); m.Name != protocol.EventBye || m.Data != `{"reason":"replaced"}` {
		t.Fatalf("old stream: %+v, want bye replaced", m)
	}
	if _, ok := a.Session(s.ID()); ok {
		t.Fatal("exported session still on a")
	}
	if _, err := a.Export(s.ID(), 1<<20, Position{}); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("second export: %v", err)
	}
	raw, _ := json.Marshal(state) // it crosses the broker as JSON
	var back SessionState
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	s2, err := b.Import(back)
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.Channels(); len(got) != 1 || got[0] != "one" {
		t.Fatalf("channels %v", got)
	}
	last := uint64(1)
	st2, _ := b.Attach(s2, Position{LastID: &last})
	c2 := testStream(t, ctx, st2)
	if m := next(t, c2); m.Name != protocol.EventSession || m.ID != "1" {
		t.Fatalf("resume: %+v", m)
	}
	want := uint64(2)
	var got []byte
	for {
		m := next(t, c2)
		if id, _ := strconv.ParseUint(m.ID, 10, 64); id != want {
			t.Fatalf("%s id %s, want %d", m.Name, m.ID, want)
		}
		want++
		if m.Name == protocol.EventGap {
			t.Fatalf("gap: %s", m.Data)
		}
		if m.Name == protocol.EventBulk {
			var ch protocol.BulkChunk
			_ = json.Unmarshal([]byte(m.Data), &ch)
			got = append(got, ch.Data...)
		}
		if m.Name == protocol.EventBulkEnd {
			break
		}
	}
	if int64(len(got)) != n || sum(got) != acc.SHA256 {
		t.Fatalf("transfer after the move: %d bytes, want %d with the announced sum", len(got), n)
	}
	// A chat after the move reaches the session on b once.
	if _, err := b.Chat(ctx, s2, "bob", "after"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, c2, "one"); m.Name != protocol.EventChat || !json.Valid([]byte(m.Data)) {
		t.Fatalf("after the move: %+v", m)
	}
}

// Chat delivered while a session is in transit reaches it exactly once,
// whichever hub saw it first.
func TestImportFillsAndSkipsChat(t *testing.T) {
	_, hubs := relayedHubs(t, 2)
	a, b := hubs[0], hubs[1]
	ctx := context.Background()
	other, _ := b.NewSession(nil)

	// Chat 1 is delivered while the session is between the hubs: b fills
	// it in at the import.
	s, _ := a.NewSession(nil)
	state, err := a.Export(s.ID(), 1<<20, Position{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Chat(ctx, other, "x", "in transit"); err != nil {
		t.Fatal(err)
	}
	s2, err := b.Import(state)
	if err != nil {
		t.Fatal(err)
	}
	if got := chatTexts(s2); len(got) != 1 || got[0] != "in transit" {
		t.Fatalf("imported session has chats %q, want the one sent in transit", got)
	}

	// Chat 2 reaches a before b: the session has it when it arrives on b,
	// and b's delivery of it later does not repeat it.
	s3, _ := a.NewSession(nil)
	a.Deliver(protocol.Chat{ID: 2, Text: "a first"})
	state, err = a.Export(s3.ID(), 1<<20, Position{})
	if err != nil {
		t.Fatal(err)
	}
	s4, err := b.Import(state)
	if err != nil {
		t.Fatal(err)
	}
	b.Deliver(protocol.Chat{ID: 2, Text: "a first"})
	if got := chatTexts(s4); len(got) != 2 || got[0] != "in transit" || got[1] != "a first" {
		t.Fatalf("imported session has chats %q, want each once", got)
	}
}

// A session that moves from a hub that lagged behind (its chat stalled while
// the other hub went on) gets every message it missed, more than the
// history a new session is shown; a new session gets that history only.
func TestImportFillsMoreThanTheHistory(t *testing.T) {
	a, b := quietHub(t), quietHub(t)
	s, _ := a.NewSession(nil)
	state, err := a.Export(s.ID(), 1<<20, Position{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3 * protocol.ChatHistory
	for i := 1; i <= n; i++ {
		b.Deliver(protocol.Chat{ID: int64(i), Text: fmt.Sprint(i)})
	}
	moved, err := b.Import(state)
	if err != nil {
		t.Fatal(err)
	}
	if got := chatTexts(moved); len(got) != n || got[0] != "1" || got[n-1] != fmt.Sprint(n) {
		t.Fatalf("the moved session has %d chats (%q…), want all %d", len(got), got[:min(3, len(got))], n)
	}
	fresh, _ := b.NewSession(nil)
	if got := chatTexts(fresh); len(got) != protocol.ChatHistory || got[0] != fmt.Sprint(n-protocol.ChatHistory+1) {
		t.Fatalf("a new session has %d chats, want the last %d", len(got), protocol.ChatHistory)
	}
}

// chatTexts lists the chat texts in s's history.
func chatTexts(s *Session) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var texts []string
	for id := s.ring.first; id < s.ring.next; id++ {
		body := string(s.ring.get(id).body)
		data, ok := strings.CutPrefix(body, "event: chat\ndata: ")
		if !ok {
			continue
		}
		var c protocol.Chat
		_ = json.Unmarshal([]byte(strings.TrimSuffix(data, "\n\n")), &c)
		texts = append(texts, c.Text)
	}
	return texts
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// A recovered session keeps its id and channels and starts at its reserved
// id: a resume from before that gets a gap.
func TestRecoverAfterLostHub(t *testing.T) {
	r, hubs := relayedHubs(t, 2)
	a, b := hubs[0], hubs[1]
	s, _ := a.NewSession([]string{"two"})
	for i := range 10 {
		tick(a, 1, strconv.Itoa(i))
	}
	ch := r.change(s.ID())
	if ch.Reserved < 11 || len(ch.Channels) != 1 || ch.Channels[0] != "two" {
		t.Fatalf("relay heard %+v", ch)
	}
	// a dies; b carries on from the record.
	s2, err := b.Recover(s.ID(), ch.Channels, ch.Reserved, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	last := uint64(7)
	st, _ := b.Attach(s2, Position{LastID: &last})
	c := testStream(t, ctx, st)
	next(t, c) // session
	m := next(t, c)
	var gap protocol.Gap
	if m.Name != protocol.EventGap || json.Unmarshal([]byte(m.Data), &gap) != nil || gap.Missed != ch.Reserved-1-last || m.ID != strconv.FormatUint(ch.Reserved-1, 10) {
		t.Fatalf("after recovery: %+v, want gap of %d", m, ch.Reserved-1-last)
	}
	tick(b, 1, "z")
	if m := next(t, c); m.Name != "two" || m.ID != strconv.FormatUint(ch.Reserved, 10) {
		t.Fatalf("after the gap: %+v", m)
	}
	// The reservation moves on as ids are used.
	for range reserveBlock / 2 {
		tick(b, 1, "y")
	}
	if got := r.change(s.ID()).Reserved; got <= ch.Reserved+reserveBlock/2 {
		t.Fatalf("reservation %d after %d more events, was %d", got, reserveBlock/2, ch.Reserved)
	}
	if _, err := b.Recover(s.ID(), nil, 1, 0, 0); err == nil {
		t.Fatal("recovered a session that is already here")
	}
	b.Drop(s2)
	if !r.change(s.ID()).Gone {
		t.Fatal("relay not told the session ended")
	}
}

// Export leaves old events out to fit the budget; what is kept is the newest.
func TestExportBudget(t *testing.T) {
	_, hubs := relayedHubs(t, 1)
	h := hubs[0]
	s, _ := h.NewSession([]string{"one"})
	for i := range 100 {
		tick(h, 0, strconv.Itoa(i))
	}
	const budget = 2000
	st, err := h.Export(s.ID(), budget, Position{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(st.Events)
	if len(st.Events) == 0 || len(st.Events) >= 100 || len(raw) > budget || st.Next != 101 || st.First != st.Next-uint64(len(st.Events)) {
		t.Fatalf("budgeted export: %d events (%d bytes of JSON), first %d next %d", len(st.Events), len(raw), st.First, st.Next)
	}
}

// A resume from before where the open stream started was sent before that
// stream's request and arrives late: it must not cut off the client it came
// from, here or through a move to another hub.
func TestLateResumeDoesNotReplaceNewerStream(t *testing.T) {
	_, hubs := relayedHubs(t, 1)
	h := hubs[0]
	s, _ := h.NewSession([]string{"one"})
	for i := range 5 {
		tick(h, 0, strconv.Itoa(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	at := func(n uint64) *uint64 { return &n }
	live, err := h.Attach(s, Position{LastID: at(4)})
	if err != nil {
		t.Fatal(err)
	}
	c := testStream(t, ctx, live)
	next(t, c) // session
	if _, err := h.Attach(s, Position{LastID: at(3)}); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("late resume from 3 over a stream from 4: %v, want ErrSuperseded", err)
	}
	if _, err := h.Export(s.ID(), 1<<20, Position{LastID: at(2)}); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("move for a late resume: %v, want ErrSuperseded", err)
	}
	if _, ok := h.Session(s.ID()); !ok {
		t.Fatal("a refused move removed the session")
	}
	tick(h, 0, "x")
	if m := next(t, c); m.Name != "one" || m.ID != "5" {
		t.Fatalf("the live stream after the late requests: %+v", m)
	}
	// From the same position or further on, or with no position at all, a
	// stream replaces the open one as before.
	for _, last := range []*uint64{at(4), at(5), nil} {
		st, err := h.Attach(s, Position{LastID: last})
		if err != nil {
			t.Fatalf("resume from %v: %v", last, err)
		}
		st.Cancel()
	}
}

// From the same position, the request sent earlier (by the client's clock,
// "at") is the late one.
func TestLateResumeByTime(t *testing.T) {
	_, hubs := relayedHubs(t, 1)
	h := hubs[0]
	s, _ := h.NewSession([]string{"one"})
	last := uint64(0)
	var attached []*Stream // none runs: each is given back at the end
	defer func() {
		for _, st := range attached {
			st.Cancel()
		}
	}()
	attach := func(at int64) error {
		st, err := h.Attach(s, Position{LastID: &last, SentAt: at})
		if err == nil {
			attached = append(attached, st)
		}
		return err
	}
	if err := attach(2000); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   int64
		late bool
	}{{1999, true}, {0, false}, {2000, false}} {
		err := attach(tc.at)
		if tc.late != errors.Is(err, ErrSuperseded) {
			t.Fatalf("resume from 0 at %d over one at 2000: %v", tc.at, err)
		}
		if err == nil && tc.at != 2000 {
			if err := attach(2000); err != nil { // the open stream at 2000 again
				t.Fatal(err)
			}
		}
	}
	if _, err := h.Export(s.ID(), 1<<20, Position{LastID: &last, SentAt: 1500}); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("move for an earlier request: %v", err)
	}
}

// A session that moves in is never refused, whatever Room said a moment
// before: its old hub has let it go. A closing hub keeps it for its
// hand-over (no stream attaches; Export moves it on), a hub at its cap goes
// over it. New sessions are still refused.
func TestMovingInIsNeverRefused(t *testing.T) {
	_, hubs := relayedHubs(t, 1)
	from := hubs[0]
	tests := []struct {
		name   string
		opts   []Option
		noRoom func(*testing.T, *Hub)
		want   error
	}{
		{"closing", nil, func(t *testing.T, h *Hub) {
			if err := h.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, ErrClosed},
		{"at the cap", []Option{WithMaxSessions(1)}, func(t *testing.T, h *Hub) {
			if _, err := h.NewSession(nil); err != nil {
				t.Fatal(err)
			}
		}, ErrTooManySessions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := quietHub(t, tt.opts...)
			if err := h.Room(); err != nil {
				t.Fatalf("Room before: %v", err)
			}
			tt.noRoom(t, h)
			if err := h.Room(); !errors.Is(err, tt.want) {
				t.Fatalf("Room: %v, want %v", err, tt.want)
			}
			if _, err := h.NewSession(nil); !errors.Is(err, tt.want) {
				t.Fatalf("NewSession: %v, want %v", err, tt.want)
			}
			s, _ := from.NewSession([]string{"one"})
			tick(from, 0, "p")
			state, err := from.Export(s.ID(), 1<<20, Position{})
			if err != nil {
				t.Fatal(err)
			}
			in, err := h.Import(state)
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			if _, ok := h.Session(s.ID()); !ok {
				t.Fatal("imported session not on the hub")
			}
			if tt.want == ErrClosed {
				last := uint64(1)
				if _, err := h.Attach(in, Position{LastID: &last}); !errors.Is(err, ErrClosed) {
					t.Fatalf("Attach on the closing hub: %v", err)
				}
			}
			// It moves on, history and all.
			again, err := h.Export(s.ID(), 1<<20, Position{})
			if err != nil || again.Next != state.Next || len(again.Events) != len(state.Events) {
				t.Fatalf("export from the hub it moved to: %+v, %v; was %+v", again, err, state)
			}
			rec, err := h.Recover(s.ID(), []string{"one"}, again.Next+reserveBlock, 0, 0)
			if err != nil {
				t.Fatalf("Recover: %v", err)
			}
			h.Drop(rec)
		})
	}
}

// Withdraw keeps all the history, however much, and ends the stream with bye
// "shutdown", so that the client comes back rather than give up.
func TestWithdrawKeepsAllAndSaysShutdown(t *testing.T) {
	_, hubs := relayedHubs(t, 1)
	h := hubs[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := h.NewSession([]string{"one"})
	st, _ := h.Attach(s, Position{})
	c := testStream(t, ctx, st)
	next(t, c) // session
	for i := range 100 {
		tick(h, 0, strconv.Itoa(i))
	}
	state, err := h.Withdraw(s.ID())
	if err != nil {
		t.Fatal(err)
	}
	if len(state.Events) != 100 || state.First != 1 || state.Next != 101 {
		t.Fatalf("withdrawn: %d events, first %d next %d", len(state.Events), state.First, state.Next)
	}
	m := next(t, c)
	for m.Name != protocol.EventBye {
		m = next(t, c)
	}
	if m.Data != `{"reason":"shutdown"}` {
		t.Fatalf("bye %s, want shutdown", m.Data)
	}
	if _, ok := h.Session(s.ID()); ok {
		t.Fatal("withdrawn session still on the hub")
	}
}
