package client

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"

	"github.com/xhrsse/xhrsse/internal/soak"
	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestResumeAfterCut: the connection is cut (the server keeps running) in
// the middle of ticks on three channels and of a 3 MiB transfer; the client
// resumes with Last-Event-ID and gets every event once: no id hole, no
// duplicate, the transfer verified.
func TestResumeAfterCut(t *testing.T) {
	srv := startServer(t)
	p := soak.StartProxy(t, []string{srv.Addr})
	c := newClient(t, p.URL())
	ctx := testCtx(t)
	s, err := c.Open(ctx, "one", "two", "three")
	if err != nil {
		t.Fatal(err)
	}
	// An unbuffered events channel keeps Run within an event of this test,
	// so the cut below falls inside the transfer.
	h := startRunN(t, s, 0)
	h.waitState(Connected)
	ticks := 0
	h.waitFor("ticks", func(ev Event) bool {
		if ev.Kind == Tick {
			ticks++
		}
		return ticks == 20
	})

	n := int64(3 << 20)
	hash := sha256.New()
	tr, err := s.Bulk(ctx, protocol.BulkPost{Bytes: &n}, hash)
	if err != nil {
		t.Fatal(err)
	}
	chunks := 0
	h.waitFor("a few chunks", func(ev Event) bool {
		if ev.Kind == BulkProgress && ev.Transfer == tr {
			chunks++
		}
		return chunks == 3
	})
	// Every connection closes (a FIN), the stream's and any POST's; new
	// ones are still accepted.
	if got := p.CutAll(soak.CutClose); got == 0 {
		t.Fatal("no connection to cut")
	}
	if got, _ := tr.Progress(); got >= n {
		t.Fatalf("the transfer was complete (%d bytes) before the cut", got)
	}
	before := len(h.ids)
	rc := h.waitState(Reconnecting)
	t.Logf("cut after %d events: %v", before, rc.Err)
	h.waitState(Resumed)
	h.waitFor("transfer", func(ev Event) bool { return ev.Kind == BulkDone && ev.Transfer == tr })
	if err := tr.Err(); err != nil {
		t.Fatalf("transfer across the cut: %v", err)
	}
	if got := hex.EncodeToString(hash.Sum(nil)); got != tr.Accepted().SHA256 {
		t.Errorf("writer sha256 %s, server %s", got, tr.Accepted().SHA256)
	}
	ticks = 0
	h.waitFor("ticks after resume", func(ev Event) bool {
		if ev.Kind == Tick {
			ticks++
		}
		return ticks == 20
	})
	h.checkIDs()
	if st := s.Stats(); st.Duplicates != 0 || st.Resumes != 1 || st.Gaps != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestResumeGap: while the client is away the session's buffer overflows;
// the resume announces the loss with a gap event and numbering stays whole.
func TestResumeGap(t *testing.T) {
	srv := startServer(t, broadcast.WithReplay(16, 0, 16))
	p := soak.StartProxy(t, []string{srv.Addr})
	c := newClient(t, p.URL())
	s, err := c.Open(testCtx(t), "one", "two", "three")
	if err != nil {
		t.Fatal(err)
	}
	h := startRun(t, s)
	h.waitState(Connected)
	h.waitFor("a tick", func(ev Event) bool { return ev.Kind == Tick })
	p.CutAll(soak.CutClose)
	h.waitState(Resumed)
	g := h.waitFor("gap", func(ev Event) bool { return ev.Kind == Gap })
	if g.Gap.Missed == 0 {
		t.Errorf("gap of nothing")
	}
	h.waitFor("a tick after the gap", func(ev Event) bool { return ev.Kind == Tick })
	h.checkIDs()
	if st := s.Stats(); st.Gaps == 0 || st.Missed < g.Gap.Missed {
		t.Errorf("stats %+v", st)
	}
}

// TestServerRestart: the server stops (bye "shutdown") and a new one starts
// on the same address, knowing nothing of the session: the client opens a
// new session, re-tunes its channels and goes on.
func TestServerRestart(t *testing.T) {
	srv := startServer(t)
	c := newClient(t, srv.URL)
	s, err := c.Open(testCtx(t), "one", "three")
	if err != nil {
		t.Fatal(err)
	}
	old := s.ID()
	h := startRun(t, s)
	h.waitState(Connected)
	h.waitFor("tick", func(ev Event) bool { return ev.Kind == Tick })

	srv.Close()
	bye := h.waitFor("bye", func(ev Event) bool { return ev.Kind == Bye })
	if bye.Bye.Reason != protocol.ByeShutdown || bye.ID != s.LastEventID() {
		t.Errorf("bye %s at position %d", describe(bye), s.LastEventID())
	}
	start := len(h.log)
	testserver.StartAt(t, srv.Addr, testserver.Config{}, fastChannels())

	ns := h.waitState(NewSession)
	if ns.Session.Session == old || !slices.Equal(ns.Session.Channels, []string{"one", "three"}) || !isNotFound(ns.Err) {
		t.Errorf("new session %+v after %v", ns.Session, ns.Err)
	}
	h.waitState(Connected)
	seen := map[string]bool{}
	h.waitFor("ticks of both channels", func(ev Event) bool {
		if ev.Kind == Tick {
			seen[ev.Channel] = true
		}
		return seen["one"] && seen["three"]
	})
	if seen["two"] {
		t.Errorf("tick of a channel never tuned")
	}
	if s.ID() == old || s.ID() != ns.Session.Session {
		t.Errorf("ID %s, old %s, new %s", protocol.ShortID(s.ID()), protocol.ShortID(old), protocol.ShortID(ns.Session.Session))
	}
	want := []string{"reconnecting", "connecting", "new-session", "connecting", "connected"}
	var got []string
	for _, ev := range h.log[start:] {
		if ev.Kind == State && ev.Attempt == 0 {
			got = append(got, ev.State.String())
		}
	}
	if len(got) < len(want) || !slices.Equal(got[len(got)-len(want):], want) {
		t.Errorf("states after restart %v, want them to end in %v", states(h.log[start:]), want)
	}
	if s.Stats().NewSessions != 1 {
		t.Errorf("stats %+v", s.Stats())
	}
}
