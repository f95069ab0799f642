package proxytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// waitTimeout bounds every "eventually" in these tests: an upper bound for a
// noisy two-core machine, not a performance claim.
const waitTimeout = 20 * time.Second

// A rawStream is one GET /events read with protocol.Decoder and nothing
// else: no reconnect, so a test sees exactly what one connection carried,
// and a count of the ": ping" comments the decoder skips.
type rawStream struct {
	Resp   *http.Response
	events chan protocol.Message
	done   chan struct{} // closed when the read loop ends
	pings  atomic.Int64
	err    error // why the read loop ended; read after done
	cancel context.CancelFunc
	opened time.Time
}

// openStream makes the request and fails the test unless it answers 200
// text/event-stream. The stream is read until the test ends.
func openStream(t testing.TB, hc *http.Client, url string, header http.Header) *rawStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: Content-Type %q, want text/event-stream", url, ct)
	}
	s := &rawStream{
		Resp:   resp,
		events: make(chan protocol.Message, 1024),
		done:   make(chan struct{}),
		cancel: cancel,
		opened: time.Now(),
	}
	// Runs in its own goroutine until the stream ends or the test cancels it.
	go func() {
		defer close(s.done)
		defer close(s.events)
		defer resp.Body.Close()
		dec := protocol.NewDecoder(io.TeeReader(resp.Body, &commentCounter{n: &s.pings}), 1<<20)
		for {
			m, err := dec.Next()
			if err != nil {
				s.err = err
				return
			}
			select {
			case s.events <- m:
			case <-ctx.Done():
				s.err = ctx.Err()
				return
			}
		}
	}()
	t.Cleanup(s.Close)
	return s
}

// Close ends the stream and waits for its read loop. It is safe to call
// more than once.
func (s *rawStream) Close() {
	s.cancel()
	<-s.done
}

// Next returns the next event, failing the test if the stream ends or none
// comes within d.
func (s *rawStream) Next(t testing.TB, d time.Duration) protocol.Message {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case m, ok := <-s.events:
		if !ok {
			t.Fatalf("stream ended after %v: %v", time.Since(s.opened).Round(time.Millisecond), s.err)
		}
		return m
	case <-timer.C:
		t.Fatalf("no event within %v", d)
	}
	return protocol.Message{}
}

// WaitFor returns the first event for which match is true, failing the test
// if the stream ends or none comes within d.
func (s *rawStream) WaitFor(t testing.TB, d time.Duration, what string, match func(protocol.Message) bool) protocol.Message {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no %s within %v", what, d)
		}
		if m := s.Next(t, left); match(m) {
			return m
		}
	}
}

// Session reads the session event that opens every stream.
func (s *rawStream) Session(t testing.TB) (protocol.SessionEvent, uint64) {
	t.Helper()
	m := s.Next(t, waitTimeout)
	if m.Name != protocol.EventSession {
		t.Fatalf("first event %q, want session", m.Name)
	}
	var se protocol.SessionEvent
	if err := json.Unmarshal([]byte(m.Data), &se); err != nil {
		t.Fatalf("session event %q: %v", m.Data, err)
	}
	return se, eventID(t, m)
}

// Pings is how many comment lines (": ping") the stream has carried.
func (s *rawStream) Pings() int64 { return s.pings.Load() }

// Ended reports whether the stream has ended.
func (s *rawStream) Ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// commentCounter counts the lines that start with ':' in what it is written,
// across writes.
type commentCounter struct {
	n         *atomic.Int64
	midLine   bool
	lastWasCR bool
}

func (c *commentCounter) Write(p []byte) (int, error) {
	for _, b := range p {
		switch {
		case b == '\n' && c.lastWasCR:
			// The LF of a CRLF: the line already ended.
		case b == '\r' || b == '\n':
			c.midLine = false
		case !c.midLine:
			c.midLine = true
			if b == ':' {
				c.n.Add(1)
			}
		}
		c.lastWasCR = b == '\r'
	}
	return len(p), nil
}

func eventID(t testing.TB, m protocol.Message) uint64 {
	t.Helper()
	id, err := strconv.ParseUint(m.ID, 10, 64)
	if err != nil {
		t.Fatalf("%s event has id %q: %v", m.Name, m.ID, err)
	}
	return id
}

// postJSON POSTs body as JSON with the extra headers and decodes a 2xx answer
// into out; it returns the status and an error for anything but 2xx.
func postJSON(hc *http.Client, url string, header http.Header, body, out any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("POST %s: reading answer: %w", url, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("POST %s: %s: %s", url, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("POST %s: decoding %s: %w", url, data, err)
		}
	}
	return resp.StatusCode, nil
}

// mustPost is postJSON that fails the test on error.
func mustPost(t testing.TB, hc *http.Client, url string, body, out any) {
	t.Helper()
	if _, err := postJSON(hc, url, nil, body, out); err != nil {
		t.Fatal(err)
	}
}

// newSession opens a session with the channels through base.
func newSession(t testing.TB, hc *http.Client, base string, channels ...string) string {
	t.Helper()
	var created protocol.SessionCreated
	mustPost(t, hc, base+"/sessions", protocol.CreateSession{Channels: channels}, &created)
	return created.Session
}

// httpClient returns a client with its own transport, whose idle connections
// close when the test ends (goleak would see their goroutines).
func httpClient(t testing.TB) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// latencies summarizes durations for a log line.
type latencies []time.Duration

func (l latencies) String() string {
	if len(l) == 0 {
		return "none"
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return fmt.Sprintf("n=%d min=%v median=%v max=%v", len(s), s[0].Round(time.Microsecond),
		s[len(s)/2].Round(time.Microsecond), s[len(s)-1].Round(time.Microsecond))
}

// eventually retries f every 50 ms until it returns nil or d passes, and
// fails the test with f's last error then.
func eventually(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("not within %v: %v", d, err)
}

// WaitEnd waits up to d for the stream to end and reports whether it did.
func (s *rawStream) WaitEnd(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return true
			}
		case <-timer.C:
			return false
		}
	}
}
