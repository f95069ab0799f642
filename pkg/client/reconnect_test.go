package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// fast is the retry: a fake stream announces so reconnects are quick.
const fast = "retry: 20\n\n"

// states returns the State events of the log, as "state/attempt".
func states(log []Event) []string {
	var out []string
	for _, ev := range log {
		if ev.Kind == State {
			out = append(out, ev.State.String()+"/"+string(rune('0'+ev.Attempt)))
		}
	}
	return out
}

func TestResumeLastEventIDAndDuplicates(t *testing.T) {
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		startSSE(w)
		switch n {
		case 0:
			raw(w, fast+sessionFrame("S1", 0, false)+frame(1, "one", "a")+frame(2, "one", "b")+frame(3, "one", "c"))
		case 1:
			// The position repeats Last-Event-ID: not a duplicate. 2 and 3
			// are.
			raw(w, sessionFrame("S1", 3, true)+frame(2, "one", "b")+frame(3, "one", "c")+frame(4, "one", "d"))
			hold(r)
		default:
			hold(r)
		}
	}
	_, s := f.session()
	h := startRun(t, s)
	h.waitFor("tick 4", func(ev Event) bool { return ev.ID == 4 })
	if got := f.header(0, "Last-Event-ID"); got != "" {
		t.Errorf("first GET sent Last-Event-ID %q", got)
	}
	if got := f.header(1, "Last-Event-ID"); got != "3" {
		t.Errorf("resume sent Last-Event-ID %q, want 3", got)
	}
	if !slices.Equal(h.ids, []uint64{1, 2, 3, 4}) {
		t.Errorf("ids %v", h.ids)
	}
	want := []string{"connecting/0", "connected/0", "reconnecting/0", "connecting/0", "resumed/0"}
	if got := states(h.log); !slices.Equal(got, want) {
		t.Errorf("states %v, want %v", got, want)
	}
	for _, ev := range h.log {
		if ev.Kind == State && ev.State == Reconnecting && !errors.Is(ev.Err, errStreamEnded) {
			t.Errorf("reconnect reason %v", ev.Err)
		}
	}
	st := s.Stats()
	if st.Duplicates != 2 || st.Connects != 2 || st.Resumes != 1 || st.Events != 4 {
		t.Errorf("stats %+v", st)
	}
	if s.LastEventID() != 4 {
		t.Errorf("LastEventID %d", s.LastEventID())
	}
}

// TestResumeAfterNoEvents: a stream that delivered nothing but its session
// event still resumes with "Last-Event-ID: 0", so events the server wrote
// to the lost connection are replayed rather than skipped.
func TestResumeAfterNoEvents(t *testing.T) {
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		startSSE(w)
		if n == 0 {
			raw(w, fast+sessionFrame("S1", 0, false))
			return
		}
		raw(w, sessionFrame("S1", 0, true)+frame(1, "one", "x"))
		hold(r)
	}
	_, s := f.session()
	h := startRun(t, s)
	h.waitFor("tick", isTick("one"))
	if got := f.header(1, "Last-Event-ID"); got != "0" {
		t.Errorf("resume sent Last-Event-ID %q, want 0", got)
	}
}

// TestTruncatedEventNotDelivered: r3labs hands over the rest of the buffer
// as an event when the connection ends; the spec (and this client) drops an
// event without its blank line, and takes it again from the resume.
func TestTruncatedEventNotDelivered(t *testing.T) {
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		startSSE(w)
		switch n {
		case 0:
			raw(w, fast+sessionFrame("S1", 0, false)+frame(1, "one", "whole")+"id: 2\nevent: one\ndata: trunc")
		default:
			raw(w, sessionFrame("S1", 1, true)+frame(2, "one", "complete"))
			hold(r)
		}
	}
	_, s := f.session()
	h := startRun(t, s)
	h.waitFor("tick 2", func(ev Event) bool { return ev.ID == 2 })
	var ticks []string
	for _, ev := range h.log {
		if ev.Kind == Tick {
			ticks = append(ticks, ev.Text)
		}
		if ev.Kind == State && ev.State == Reconnecting && !errors.Is(ev.Err, io.ErrUnexpectedEOF) {
			t.Errorf("reconnect reason %v, want unexpected EOF", ev.Err)
		}
	}
	if !slices.Equal(ticks, []string{"whole", "complete"}) {
		t.Errorf("ticks %q", ticks)
	}
	if got := f.header(1, "Last-Event-ID"); got != "1" {
		t.Errorf("resume sent Last-Event-ID %q, want 1", got)
	}
}

// TestRetryHonoured: the reconnect waits the server's retry: delay (a lower
// bound, so a slow machine cannot make it fail); an invalid retry: is
// ignored, as the spec says.
func TestRetryHonoured(t *testing.T) {
	f := newFake(t)
	var mu sync.Mutex
	var ended, again time.Time
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		startSSE(w)
		if n == 0 {
			raw(w, "retry: 600\n\nretry: 1x\n\nretry: -1\n\n"+sessionFrame("S1", 0, false))
			mu.Lock()
			ended = time.Now()
			mu.Unlock()
			return
		}
		mu.Lock()
		again = time.Now()
		mu.Unlock()
		raw(w, sessionFrame("S1", 0, true))
		hold(r)
	}
	_, s := f.session()
	h := startRun(t, s)
	h.waitState(Resumed)
	mu.Lock()
	defer mu.Unlock()
	if d := again.Sub(ended); d < 600*time.Millisecond {
		t.Errorf("reconnected after %v, server asked for 600ms", d)
	}
}

func TestDelay(t *testing.T) {
	c := &Client{maxBackoff: 10 * time.Second}
	r := &runner{s: &Session{c: c}, retry: 2 * time.Second}
	if d := r.delay(0, 0); d != 2*time.Second {
		t.Errorf("after a working connection: %v, want the server's 2s", d)
	}
	for f := 1; f < 70; f++ {
		d := r.delay(f, 0)
		lo := min(2*time.Second<<min(f, 16), 10*time.Second)
		if d < lo || d > lo+lo/4 {
			t.Errorf("failure %d: %v, want in [%v, %v]", f, d, lo, lo+lo/4)
		}
	}
	if d := r.delay(1, time.Minute); d != time.Minute {
		t.Errorf("Retry-After: %v", d)
	}
	r.retry = time.Minute // the server's delay beats our cap
	if d := r.delay(3, 0); d < time.Minute {
		t.Errorf("retry above cap: %v", d)
	}
}

func TestBackoffAttempts(t *testing.T) {
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 0:
			startSSE(w)
			raw(w, fast+sessionFrame("S1", 0, false))
		case 1, 2:
			writeJSON(w, http.StatusServiceUnavailable, protocol.Error{Error: "busy"})
		default:
			startSSE(w)
			raw(w, sessionFrame("S1", 0, true))
			hold(r)
		}
	}
	_, s := f.session()
	h := startRun(t, s)
	h.waitState(Resumed)
	want := []string{"connecting/0", "connected/0", "reconnecting/0", "connecting/0",
		"reconnecting/1", "connecting/1", "reconnecting/2", "connecting/2", "resumed/0"}
	if got := states(h.log); !slices.Equal(got, want) {
		t.Errorf("states %v\nwant   %v", got, want)
	}
	var ae *APIError
	for _, ev := range h.log {
		if ev.Kind == State && ev.State == Reconnecting && ev.Attempt > 0 {
			if !errors.As(ev.Err, &ae) || ae.Status != 503 || ae.Message != "busy" {
				t.Errorf("attempt %d error %v", ev.Attempt, ev.Err)
			}
		}
	}
}

// TestNewSessionOn404: the server forgot the session: a new one is opened
// with the same channels, transfers in flight fail, numbering starts again.
func TestNewSessionOn404(t *testing.T) {
	bulkPosted := make(chan struct{})
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 0:
			startSSE(w)
			raw(w, fast+sessionFrame("S1", 0, false, "one", "two")+frame(1, "one", "a")+frame(2, "one", "b"))
			select {
			case <-bulkPosted:
			case <-r.Context().Done():
			}
		case 1:
			writeJSON(w, http.StatusNotFound, protocol.Error{Error: "unknown session"})
		default:
			startSSE(w)
			raw(w, sessionFrame(r.URL.Query().Get("session"), 0, false)+frame(1, "one", "new"))
			hold(r)
		}
	}
	f.bulk = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusAccepted, protocol.BulkAccepted{Transfer: "T1", Bytes: 1, Chunks: 1, SHA256: "x"})
	}
	c := newClient(t, f.srv.URL)
	ctx := testCtx(t)
	s, err := c.Open(ctx, "one", "two")
	if err != nil {
		t.Fatal(err)
	}
	h := startRun(t, s)
	h.waitFor("tick 2", func(ev Event) bool { return ev.ID == 2 })
	one := int64(1)
	tr, err := s.Bulk(ctx, protocol.BulkPost{Bytes: &one}, nil)
	if err != nil {
		t.Fatal(err)
	}
	close(bulkPosted)
	ns := h.waitState(NewSession)
	if ns.Session == nil || ns.Session.Session != "S2" || !slices.Equal(ns.Session.Channels, []string{"one", "two"}) || !isNotFound(ns.Err) {
		t.Fatalf("new session event %+v err %v", ns.Session, ns.Err)
	}
	h.waitFor("lost transfer", func(ev Event) bool { return ev.Kind == BulkDone && ev.Transfer == tr })
	if !errors.Is(tr.Err(), ErrSessionLost) {
		t.Errorf("transfer error %v", tr.Err())
	}
	h.waitState(Connected)
	ev := h.waitFor("tick of the new session", isTick("one"))
	if ev.ID != 1 || ev.Text != "new" {
		t.Errorf("first tick of new session: %s", describe(ev))
	}
	if s.ID() != "S2" || !slices.Equal(s.Channels(), []string{}) {
		t.Errorf("session %s channels %v", s.ID(), s.Channels())
	}
	f.mu.Lock()
	opens, queries := slices.Clone(f.opens), slices.Clone(f.queries)
	f.mu.Unlock()
	if len(opens) != 2 || !slices.Equal(opens[1].Channels, []string{"one", "two"}) {
		t.Errorf("POST /sessions bodies %+v", opens)
	}
	if !slices.Equal(queries, []string{"S1", "S1", "S2"}) {
		t.Errorf("GET /events sessions %v", queries)
	}
	if got := f.header(2, "Last-Event-ID"); got != "" {
		t.Errorf("new session's first GET sent Last-Event-ID %q", got)
	}
	if st := s.Stats(); st.NewSessions != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestByeShutdownReconnects(t *testing.T) {
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		startSSE(w)
		if n == 0 {
			raw(w, fast+sessionFrame("S1", 0, false)+frame(1, "one", "a")+frame(1, protocol.EventBye, `{"reason":"shutdown"}`))
			hold(r) // the client must go by itself
			return
		}
		raw(w, sessionFrame("S1", 1, true)+frame(2, "one", "b"))
		hold(r)
	}
	_, s := f.session()
	h := startRun(t, s)
	bye := h.waitFor("bye", func(ev Event) bool { return ev.Kind == Bye })
	if bye.ID != 1 || bye.Bye.Reason != protocol.ByeShutdown {
		t.Errorf("bye %s", describe(bye))
	}
	h.waitState(Resumed)
	h.waitFor("tick 2", func(ev Event) bool { return ev.ID == 2 })
	if s.Stats().Duplicates != 0 {
		t.Errorf("bye counted as duplicate")
	}
}

func TestByeExpiredOpensNewSession(t *testing.T) {
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		startSSE(w)
		if n == 0 {
			raw(w, fast+sessionFrame("S1", 0, false)+frame(0, protocol.EventBye, `{"reason":"expired"}`))
			hold(r)
			return
		}
		raw(w, sessionFrame(r.URL.Query().Get("session"), 0, false))
		hold(r)
	}
	_, s := f.session()
	h := startRun(t, s)
	h.waitState(NewSession)
	h.waitState(Connected)
	if s.ID() != "S2" {
		t.Errorf("session %s", s.ID())
	}
}

// TestFailures: answers that retrying cannot fix end Run with an error.
func TestFailures(t *testing.T) {
	cases := []struct {
		name   string
		opts   []Option
		stream func(w http.ResponseWriter, r *http.Request)
		want   func(error) bool
	}{
		{"bye replaced", nil, func(w http.ResponseWriter, r *http.Request) {
			startSSE(w)
			raw(w, sessionFrame("S1", 0, false)+frame(0, protocol.EventBye, `{"reason":"replaced"}`))
			hold(r)
		}, func(err error) bool { return errors.Is(err, ErrReplaced) }},
		{"400", nil, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusBadRequest, protocol.Error{Error: "bad"})
		}, func(err error) bool { var ae *APIError; return errors.As(err, &ae) && ae.Status == 400 }},
		{"not an event stream", nil, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("hello"))
		}, func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"foreign session", nil, func(w http.ResponseWriter, r *http.Request) {
			startSSE(w)
			raw(w, sessionFrame("OTHER", 0, false))
			hold(r)
		}, func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"id not a number", nil, func(w http.ResponseWriter, r *http.Request) {
			startSSE(w)
			raw(w, sessionFrame("S1", 0, false)+"id: x1\nevent: one\ndata: a\n\n")
			hold(r)
		}, func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"event too large", []Option{WithMaxEventSize(1000)}, func(w http.ResponseWriter, r *http.Request) {
			startSSE(w)
			raw(w, sessionFrame("S1", 0, false)+frame(1, "one", strings.Repeat("x", 5000)))
			hold(r)
		}, func(err error) bool { return errors.Is(err, ErrEventTooLarge) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.stream = func(w http.ResponseWriter, r *http.Request, n int) { tc.stream(w, r) }
			_, s := f.session(tc.opts...)
			h := startRun(t, s)
			ev := h.waitState(Failed)
			if !tc.want(ev.Err) {
				t.Errorf("failed with %v", ev.Err)
			}
			select {
			case err := <-h.done:
				h.done <- err
				if err != ev.Err {
					t.Errorf("Run returned %v, Failed said %v", err, ev.Err)
				}
			case <-time.After(eventually):
				t.Fatal("Run did not return after Failed")
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		startSSE(w)
		raw(w, fast+sessionFrame("S1", 0, n > 0))
		hold(r) // then silence: no ping
	}
	_, s := f.session(WithIdleTimeout(200 * time.Millisecond))
	h := startRun(t, s)
	ev := h.waitState(Reconnecting)
	if !errors.Is(ev.Err, errIdle) {
		t.Errorf("reconnect reason %v", ev.Err)
	}
	h.waitState(Resumed)
}

// TestIdleCountsFromTheAnswer: a server that takes longer than the idle
// limit to answer (a node of a cluster taking the session over) is waited
// for: the idle limit counts from the answer's head, so the first stream
// is read, not dropped and asked for again.
func TestIdleCountsFromTheAnswer(t *testing.T) {
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		time.Sleep(400 * time.Millisecond) // twice the idle limit
		startSSE(w)
		raw(w, sessionFrame("S1", 0, n > 0)+frame(1, "one", "a"))
		hold(r)
	}
	_, s := f.session(WithIdleTimeout(200 * time.Millisecond))
	h := startRun(t, s)
	h.waitFor("the first event", func(ev Event) bool { return ev.ID == 1 })
	if n := f.count(); n != 1 {
		t.Errorf("%d GET /events for one stream answered late", n)
	}
	for _, ev := range h.log {
		if ev.Kind == State && ev.State == Reconnecting {
			t.Errorf("reconnected: %v", ev.Err)
		}
	}
	// Once answered, silence is still cut at the idle limit.
	if ev := h.waitState(Reconnecting); !errors.Is(ev.Err, errIdle) {
		t.Errorf("reconnect reason %v, want the idle limit", ev.Err)
	}
}

// TestConnectTimeout: a server that never answers the stream's request is
// given up on after the connect timeout, and asked again.
func TestConnectTimeout(t *testing.T) {
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			hold(r) // no answer at all
			return
		}
		startSSE(w)
		raw(w, sessionFrame("S1", 0, false))
		hold(r)
	}
	_, s := f.session(WithConnectTimeout(200*time.Millisecond), WithIdleTimeout(time.Hour))
	h := startRun(t, s)
	if ev := h.waitState(Reconnecting); !errors.Is(ev.Err, errNoAnswer) {
		t.Errorf("reconnect reason %v, want no answer", ev.Err)
	}
	h.waitState(Connected)
}

func TestRunOnce(t *testing.T) {
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		startSSE(w)
		raw(w, sessionFrame("S1", 0, false))
		hold(r)
	}
	_, s := f.session()
	h := startRun(t, s)
	h.waitState(Connected)
	if err := s.Run(context.Background(), make(chan Event)); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v", err)
	}
}

// TestRunStopsWhileBlocked: nobody reads events; cancelling ctx still ends
// Run at once, and (TestMain) leaves no goroutine.
func TestRunStopsWhileBlocked(t *testing.T) {
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		startSSE(w)
		raw(w, sessionFrame("S1", 0, false)+frame(1, "one", "a")+frame(2, "one", "b"))
		hold(r)
	}
	_, s := f.session()
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan Event, 2) // room for connecting and connected; never read
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, events) }()
	ssetest.Eventually(t, "connecting and connected, with no reader", func() bool { return len(events) == cap(events) })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(eventually):
		t.Fatal("Run blocked on a full events channel")
	}
	// Nothing was taken: the next Run would get the events again.
	if s.LastEventID() != 0 {
		t.Errorf("LastEventID %d after nothing was delivered", s.LastEventID())
	}
}

// In a cluster each connection may be served by another node: the state
// event says which (X-Xhrsse-Node), so a user can see the hop.
func TestStateEventsNameTheNode(t *testing.T) {
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("X-Xhrsse-Node", fmt.Sprintf("n%d", n+1))
		startSSE(w)
		if n == 0 {
			raw(w, fast+sessionFrame("S1", 0, false)+frame(1, "one", "a"))
			return
		}
		raw(w, sessionFrame("S1", 1, true)+frame(2, "one", "b"))
		hold(r)
	}
	_, s := f.session()
	h := startRun(t, s)
	if ev := h.waitState(Connected); ev.Node != "n1" {
		t.Fatalf("Connected on node %q, want n1", ev.Node)
	}
	if ev := h.waitState(Resumed); ev.Node != "n2" {
		t.Fatalf("Resumed on node %q, want n2", ev.Node)
	}
}
