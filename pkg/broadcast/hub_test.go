package broadcast

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pipeWriter is an http.ResponseWriter whose body is read, as it is
// written, by a protocol.Decoder on the other end of a pipe.
type pipeWriter struct {
	pw  *io.PipeWriter
	hdr http.Header
}

func (w *pipeWriter) Header() http.Header         { return w.hdr }
func (w *pipeWriter) WriteHeader(int)             {}
func (w *pipeWriter) Write(p []byte) (int, error) { return w.pw.Write(p) }

// testStream runs st and returns a channel of the messages it writes. The
// stream ends when ctx ends or the hub closes; cleanup waits for it.
func testStream(t *testing.T, ctx context.Context, st *Stream) <-chan protocol.Message {
	t.Helper()
	pr, pw := io.Pipe()
	out := make(chan protocol.Message, 4096)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		err := st.Run(ctx, &pipeWriter{pw: pw, hdr: http.Header{}})
		pw.CloseWithError(err)
	}()
	go func() {
		defer wg.Done()
		defer close(out)
		dec := protocol.NewDecoder(pr, 1<<20)
		for {
			m, err := dec.Next()
			if err != nil {
				pr.CloseWithError(err)
				return
			}
			out <- m
		}
	}()
	t.Cleanup(wg.Wait)
	return out
}

// next returns the next message that is not a channel tick, failing after a while.
func next(t *testing.T, c <-chan protocol.Message, skip ...string) protocol.Message {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-c:
			if !ok {
				t.Fatal("stream ended")
			}
			if contains(skip, m.Name) {
				continue
			}
			return m
		case <-timeout:
			t.Fatal("no event within 10s")
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// quietHub is a hub whose channels tick so rarely (every 116 days, ticks
// fall at multiples of the period since the epoch) that tests drive
// publishing themselves.
func quietHub(t *testing.T, opts ...Option) *Hub {
	t.Helper()
	h, err := New(append([]Option{WithChannels(DefaultChannelsAt(1e-7)...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return h
}

func tick(h *Hub, channel int, s string) {
	body, _ := protocol.AppendBody(nil, h.channels[channel].Name, []byte(s))
	h.deliverTicks([]dueTick{{c: h.channels[channel], ev: &event{body: body, at: time.Now().UnixNano()}}})
}

func TestTuneFanOut(t *testing.T) {
	h := quietHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := h.NewSession([]string{"one"})
	b, _ := h.NewSession([]string{"one", "two"})
	sa, _ := h.Attach(a, Position{})
	sb, _ := h.Attach(b, Position{})
	ca, cb := testStream(t, ctx, sa), testStream(t, ctx, sb)
	for _, c := range []<-chan protocol.Message{ca, cb} {
		if m := next(t, c); m.Name != protocol.EventSession || m.ID != "0" {
			t.Fatalf("first event %+v, want session with id 0", m)
		}
	}
	tick(h, 0, "x")
	tick(h, 1, "語")
	if m := next(t, ca); m.Name != "one" || m.Data != "x" || m.ID != "1" {
		t.Fatalf("a got %+v", m)
	}
	if m := next(t, cb); m.Name != "one" || m.Data != "x" || m.ID != "1" {
		t.Fatalf("b got %+v", m)
	}
	if m := next(t, cb); m.Name != "two" || m.Data != "語" || m.ID != "2" {
		t.Fatalf("b got %+v", m)
	}

	// Tuning in twice is one subscription and one tuned event.
	for range 2 {
		got, err := a.Tune("two", true)
		if err != nil || len(got) != 2 {
			t.Fatalf("Tune: %v %v", got, err)
		}
	}
	if m := next(t, ca); m.Name != protocol.EventTuned || m.Data != `{"channels":["one","two"]}` {
		t.Fatalf("a got %+v", m)
	}
	tick(h, 1, "字")
	if m := next(t, ca); m.Name != "two" || m.Data != "字" || m.ID != "3" {
		t.Fatalf("a got %+v, want the tick right after one tuned event", m)
	}
	if _, err := a.SetChannels(nil); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ca); m.Name != protocol.EventTuned || m.Data != `{"channels":[]}` {
		t.Fatalf("a got %+v", m)
	}
	if _, err := a.Tune("four", true); !errors.Is(err, ErrUnknownChannel) {
		t.Fatalf("unknown channel: %v", err)
	}
	if len(h.subs[0]) != 1 || len(h.subs[1]) != 1 {
		t.Fatalf("listener sets %d %d, want 1 1", len(h.subs[0]), len(h.subs[1]))
	}
}

func TestSessionTTL(t *testing.T) {
	h := quietHub(t, WithSessionTTL(50*time.Millisecond))
	idle, _ := h.NewSession(nil)
	held, _ := h.NewSession(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, _ := h.Attach(held, Position{})
	c := testStream(t, ctx, st)
	next(t, c)
	ssetest.Eventually(t, "the idle session to expire", func() bool {
		_, ok := h.Session(idle.ID())
		return !ok
	})
	time.Sleep(200 * time.Millisecond) // several TTLs
	if _, ok := h.Session(held.ID()); !ok {
		t.Fatal("session with a stream expired")
	}
	if _, err := idle.Tune("one", true); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("tune on expired session: %v", err)
	}
	if _, err := h.Attach(idle, Position{}); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("attach to expired session: %v", err)
	}
}

func TestMaxStreamsAndSessions(t *testing.T) {
	h := quietHub(t, WithMaxStreams(1), WithMaxSessions(2))
	a, _ := h.NewSession(nil)
	b, _ := h.NewSession(nil)
	if _, err := h.NewSession(nil); !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("third session: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := h.Attach(a, Position{})
	if err != nil {
		t.Fatal(err)
	}
	c := testStream(t, ctx, st)
	next(t, c)
	if _, err := h.Attach(b, Position{}); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("second stream: %v", err)
	}
}

func TestCloseSendsBye(t *testing.T) {
	chans := DefaultChannels()
	h, err := New(WithChannels(chans...))
	if err != nil {
		t.Fatal(err)
	}
	var cs []<-chan protocol.Message
	for range 3 {
		s, _ := h.NewSession([]string{"one"})
		st, _ := h.Attach(s, Position{})
		c := testStream(t, context.Background(), st)
		next(t, c)
		cs = append(cs, c)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if m := next(t, c, "one"); m.Name != protocol.EventBye || m.Data != `{"reason":"shutdown"}` {
			t.Fatalf("got %+v, want bye shutdown", m)
		}
	}
	if _, err := h.NewSession(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewSession after Close: %v", err)
	}
}
