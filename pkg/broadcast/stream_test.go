package broadcast

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// flushWriter is a ResponseWriter that hands over what was written between
// two flushes as one piece: one piece per write the stream made.
type flushWriter struct {
	mu     sync.Mutex // guards cur
	cur    bytes.Buffer
	pieces chan []byte
}

func newFlushWriter() *flushWriter { return &flushWriter{pieces: make(chan []byte, 1024)} }

func (w *flushWriter) Header() http.Header { return http.Header{} }
func (w *flushWriter) WriteHeader(int)     {}
func (w *flushWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur.Write(p)
}

func (w *flushWriter) FlushError() error {
	w.mu.Lock()
	p := bytes.Clone(w.cur.Bytes())
	w.cur.Reset()
	w.mu.Unlock()
	w.pieces <- p
	return nil
}

// piece waits for the next write.
func (w *flushWriter) piece(t *testing.T) string {
	t.Helper()
	select {
	case p := <-w.pieces:
		return string(p)
	case <-time.After(10 * time.Second):
		t.Fatal("no write within 10s")
		return ""
	}
}

// runStream runs st into w until the test ends.
func runStream(t *testing.T, st *Stream, w http.ResponseWriter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.Run(ctx, w)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func tickEvent(data string) *event {
	body, _ := protocol.AppendBody(nil, "one", []byte(data))
	return &event{body: body, at: time.Now().UnixNano()}
}

// With a flush interval, events pushed close together after a write leave in
// one write, not one each.
func TestFlushIntervalCoalesces(t *testing.T) {
	h := quietHub(t, WithFlushInterval(time.Second))
	s, _ := h.NewSession(nil)
	st, _ := h.Attach(s, Position{})
	w := newFlushWriter()
	runStream(t, st, w)
	if p := w.piece(t); !strings.Contains(p, "event: session") {
		t.Fatalf("first write %q", p)
	}
	// Well inside the second after the preamble's write.
	for i := range 5 {
		s.push(tickEvent(string(rune('a' + i))))
	}
	p := w.piece(t)
	if n := strings.Count(p, "event: one\n"); n != 5 {
		t.Fatalf("%d of 5 events in the first write after the preamble: %q", n, p)
	}
}

// An urgent event (chat) ends a coalescing wait, whatever its length; so
// do a bulk request and the end of the stream. (The end of the request or of the hub raise
// their flags from Run, which TestCloseSendsBye and the server's tests
// cover.)
func TestLingerCutShort(t *testing.T) {
	cases := []struct {
		name string
		cut  func(h *Hub, s *Session)
	}{
		{"urgent event", func(h *Hub, s *Session) {
			ev := tickEvent("x")
			ev.urgent = true
			s.push(ev)
		}},
		{"expiry", func(h *Hub, s *Session) { h.Drop(s) }},
		{"bulk request", func(h *Hub, s *Session) {
			n := int64(10)
			if _, err := s.Bulk(protocol.BulkPost{Bytes: &n}); err != nil {
				t.Error(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := quietHub(t, WithFlushInterval(time.Second))
			s, _ := h.NewSession(nil)
			st, _ := h.Attach(s, Position{})
			defer st.Cancel() // Run is not running it
			done := make(chan struct{})
			st.lastWrite.Store(time.Now().UnixNano())
			go func() {
				defer close(done)
				// An hour: only the cut can end it within the test.
				st.linger(time.Hour)
			}()
			c.cut(h, s)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("linger still waiting 10s after the cut")
			}
		})
	}
}

// A stream that has not written for the flush interval writes at once.
func TestLingerQuietStreamDoesNotWait(t *testing.T) {
	h := quietHub(t, WithFlushInterval(time.Second))
	s, _ := h.NewSession(nil)
	st, _ := h.Attach(s, Position{})
	defer st.Cancel() // Run is not running it
	done := make(chan struct{})
	st.lastWrite.Store(time.Now().Add(-2 * time.Hour).UnixNano())
	go func() {
		defer close(done)
		st.linger(time.Hour)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a stream quiet for longer than the interval waited")
	}
	if st.onWheel.Load() {
		t.Fatal("the stream went on the wheel for no wait")
	}
}

// A stream that keeps up sends a run of bulk chunks in one write, ids in
// order, and the events queued around them in writes of their own.
func TestBulkChunksShareWrites(t *testing.T) {
	h := quietHub(t)
	s, _ := h.NewSession(nil)
	st, _ := h.Attach(s, Position{})
	w := newFlushWriter()
	runStream(t, st, w)
	w.piece(t) // preamble
	size := int64(10 * protocol.BulkChunkSize)
	acc, err := s.Bulk(protocol.BulkPost{Bytes: &size})
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	most := 0
	for !strings.Contains(all.String(), "event: "+protocol.EventBulkEnd+"\n") {
		p := w.piece(t)
		most = max(most, strings.Count(p, "event: "+protocol.EventBulk+"\n"))
		all.WriteString(p)
	}
	if most < 2 || most > maxChunks {
		t.Fatalf("at most %d chunks in one write, want 2…%d", most, maxChunks)
	}
	dec := protocol.NewDecoder(strings.NewReader(all.String()), 1<<20)
	seq := 0
	for {
		m, err := dec.Next()
		if err != nil {
			break
		}
		if m.Name == protocol.EventBulk {
			if want := `"seq":` + strconv.Itoa(seq) + `,`; !strings.Contains(m.Data, want) {
				t.Fatalf("chunk %d out of order: %.60s", seq, m.Data)
			}
			seq++
		}
	}
	if seq != acc.Chunks {
		t.Fatalf("%d chunks, want %d", seq, acc.Chunks)
	}
}
