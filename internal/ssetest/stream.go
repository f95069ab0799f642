package ssetest

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

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// ErrTimeout is what Recv returns when no event came in time.
var ErrTimeout = errors.New("no event in time")

// ErrIdle ends a stream opened with Idle when no byte came for that long.
var ErrIdle = errors.New("stream silent too long")

// An Event is a dispatched event and when the stream decoded it.
type Event struct {
	protocol.Message
	At time.Time
}

// A Stream is one open GET /events, decoded by its own goroutine into a
// queue, so that a test can wait for events with a timeout, read several
// streams in turn, and know when each event arrived.
type Stream struct {
	// Response is the 200 answer; its Body belongs to the stream.
	Response *http.Response

	cancel   context.CancelCauseFunc
	idle     time.Duration
	maxQueue int
	done     chan struct{} // closed when the reader returns
	notify   chan struct{} // cap 1: "an event came or the stream ended"
	space    chan struct{} // cap 1: "an event left a full queue"

	mu    sync.Mutex // guards the fields below
	head  []byte     // the first bytes of the body, as received
	queue []Event
	pings int64 // comment lines seen
	retry int   // the last retry field, in milliseconds; -1 if none
	line  lineState
	ended bool
	err   error // why the stream ended: io.EOF for a clean end
}

// An Option sets how a Stream reads.
type Option func(*Stream)

// Idle ends the stream with ErrIdle when no byte (event or comment) comes for
// d, as a client watching for a dead connection does.
func Idle(d time.Duration) Option { return func(s *Stream) { s.idle = d } }

// MaxQueue bounds the events decoded but not yet taken: the reader stops
// reading while n wait, so that a slow test is a slow reader to the server
// too. The default is no bound.
func MaxQueue(n int) Option { return func(s *Stream) { s.maxQueue = n } }

// Connect sends GET url with header and starts reading the stream if the
// answer is 200. Any other status comes back as a Reply, with a nil Stream.
// An error means no answer, or a 200 that is not text/event-stream. The
// stream lives until ctx ends or Close; the caller closes it.
func Connect(ctx context.Context, hc *http.Client, url string, header http.Header, opts ...Option) (*Stream, Reply, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel(nil)
		return nil, Reply{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel(nil)
		return nil, Reply{}, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel(nil)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return nil, Reply{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		cancel(nil)
		return nil, Reply{}, fmt.Errorf("GET %s: Content-Type %q, want text/event-stream", url, ct)
	}
	s := &Stream{
		Response: resp,
		cancel:   cancel,
		done:     make(chan struct{}),
		notify:   make(chan struct{}, 1),
		space:    make(chan struct{}, 1),
		retry:    -1,
	}
	for _, o := range opts {
		o(s)
	}
	go s.read(ctx, resp.Body)
	return s, Reply{Status: resp.StatusCode, Header: resp.Header}, nil
}

// TryOpen is Connect for a test: an error fails it, and the stream is closed
// when the test ends.
func TryOpen(t testing.TB, hc *http.Client, url string, header http.Header, opts ...Option) (*Stream, Reply) {
	t.Helper()
	s, r, err := Connect(context.Background(), hc, url, header, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if s != nil {
		t.Cleanup(s.Close)
	}
	return s, r
}

// Open is TryOpen that fails the test unless the answer is a 200.
func Open(t testing.TB, hc *http.Client, url string, header http.Header, opts ...Option) *Stream {
	t.Helper()
	s, r := TryOpen(t, hc, url, header, opts...)
	if s == nil {
		t.Fatalf("GET %s: %d %s", url, r.Status, r.Body)
	}
	return s
}

// read decodes the body until it ends or the stream is closed.
// Runs in its own goroutine, owned by the Stream.
func (s *Stream) read(ctx context.Context, body io.ReadCloser) {
	defer close(s.done)
	defer body.Close()
	var r io.Reader = recorder{body, s}
	if s.idle > 0 {
		timer := time.AfterFunc(s.idle, func() { s.cancel(ErrIdle) })
		defer timer.Stop()
		r = watchdog{r, timer, s.idle}
	}
	dec := protocol.NewDecoder(r, maxLine)
	for {
		m, err := dec.Next()
		now := time.Now()
		if err == nil && !s.waitSpace(ctx) {
			err = ctx.Err()
		}
		s.mu.Lock()
		s.retry = dec.Retry
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				err = cause
			}
			s.ended, s.err = true, err
		} else {
			s.queue = append(s.queue, Event{m, now})
		}
		s.mu.Unlock()
		signal(s.notify)
		if err != nil {
			return
		}
	}
}

// waitSpace waits until the queue has room; false if ctx ended first.
func (s *Stream) waitSpace(ctx context.Context) bool {
	if s.maxQueue <= 0 {
		return true
	}
	for {
		s.mu.Lock()
		room := len(s.queue) < s.maxQueue
		s.mu.Unlock()
		if room {
			return true
		}
		select {
		case <-s.space:
		case <-ctx.Done():
			return false
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Close drops the connection (the server sees a client that went away) and
// waits for the reader. It is safe to call more than once.
func (s *Stream) Close() { s.Cut(errors.New("closed by the test")) }

// Cut is Close with the cause that Err reports, unless the stream had
// already ended.
func (s *Stream) Cut(cause error) {
	s.cancel(cause)
	<-s.done
}

// Recv returns the next event, ErrTimeout if none came within timeout, or,
// once the stream has ended and its events are taken, an error wrapping
// Err (io.EOF for a clean end).
func (s *Stream) Recv(timeout time.Duration) (Event, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			ev := s.queue[0]
			s.queue[0] = Event{}
			s.queue = s.queue[1:]
			s.mu.Unlock()
			signal(s.space)
			return ev, nil
		}
		if s.ended {
			err := s.err
			s.mu.Unlock()
			return Event{}, fmt.Errorf("stream ended: %w", err)
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-timer.C:
			return Event{}, ErrTimeout
		}
	}
}

// Next returns the next event, failing the test if the stream ends or none
// comes within Wait.
func (s *Stream) Next(t testing.TB) protocol.Message {
	t.Helper()
	ev, err := s.Recv(Wait)
	if err != nil {
		t.Fatalf("waiting for an event: %v", err)
	}
	return ev.Message
}

// Expect returns the next event, failing the test unless it is named name.
func (s *Stream) Expect(t testing.TB, name string) protocol.Message {
	t.Helper()
	m := s.Next(t)
	if m.Name != name {
		t.Fatalf("got event %s (id %s, data %.200q), want %s", m.Name, m.ID, m.Data, name)
	}
	return m
}

// Until reads events until one satisfies match, within Wait; it returns that
// event and the ones before it.
func (s *Stream) Until(t testing.TB, what string, match func(protocol.Message) bool) (protocol.Message, []protocol.Message) {
	t.Helper()
	return s.UntilWithin(t, Wait, what, match)
}

// UntilWithin is Until within d.
func (s *Stream) UntilWithin(t testing.TB, d time.Duration, what string, match func(protocol.Message) bool) (protocol.Message, []protocol.Message) {
	t.Helper()
	deadline := time.Now().Add(d)
	var before []protocol.Message
	for {
		ev, err := s.Recv(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for %s (after %d other events): %v", what, len(before), err)
		}
		if match(ev.Message) {
			return ev.Message, before
		}
		before = append(before, ev.Message)
	}
}

// UntilNamed reads events until one named name; see Until.
func (s *Stream) UntilNamed(t testing.TB, name string) (protocol.Message, []protocol.Message) {
	t.Helper()
	return s.Until(t, name, Named(name))
}

// End reads until the server ends the stream cleanly, within Wait, and
// returns the events that came before the end.
func (s *Stream) End(t testing.TB) []protocol.Message {
	t.Helper()
	deadline := time.Now().Add(Wait)
	var rest []protocol.Message
	for {
		ev, err := s.Recv(time.Until(deadline))
		switch {
		case err == nil:
			rest = append(rest, ev.Message)
			continue
		case errors.Is(err, io.EOF):
			return rest
		}
		t.Fatalf("waiting for the stream to end (after %d events): %v", len(rest), err)
	}
}

// Session reads the session event that opens every stream and returns its
// body and its id, the stream's position.
func (s *Stream) Session(t testing.TB) (protocol.SessionEvent, uint64) {
	t.Helper()
	m := s.Expect(t, protocol.EventSession)
	return Decode[protocol.SessionEvent](t, m), ID(t, m)
}

// ExpectBye reads up to the bye event, which must have the reason given and
// be the last event of the stream; it returns the bye and the events before.
func (s *Stream) ExpectBye(t testing.TB, reason string) (protocol.Message, []protocol.Message) {
	t.Helper()
	bye, before := s.UntilNamed(t, protocol.EventBye)
	if got := Decode[protocol.Bye](t, bye); got.Reason != reason {
		t.Fatalf("bye reason %q, want %q", got.Reason, reason)
	}
	if rest := s.End(t); len(rest) > 0 {
		t.Fatalf("%d events after bye, first %s", len(rest), rest[0].Name)
	}
	return bye, before
}

// Done is closed when the stream has ended: the server ended it, the
// connection broke, or it was closed.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Ended reports whether the stream has ended.
func (s *Stream) Ended() bool {
	// The flag, not done: done closes only after the body is closed, a
	// moment after Recv has already reported the end.
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// WaitEnd waits up to d for the stream to end and reports whether it did.
func (s *Stream) WaitEnd(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-s.done:
		return true
	case <-timer.C:
		return false
	}
}

// Err is why the stream ended: io.EOF for a clean end, the cause given to
// Cut, ErrIdle, or the read error; nil while it runs.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Pings is how many comment lines (": ping") the stream has carried; the
// decoder skips them.
func (s *Stream) Pings() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pings
}

// Retry is the last retry the stream set, in milliseconds, as of the last
// event queued; -1 if none.
func (s *Stream) Retry() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retry
}

// Head returns the first 256 bytes the stream received, for the tests of its
// preamble.
func (s *Stream) Head() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.head)
}

// Named matches events named name.
func Named(name string) func(protocol.Message) bool {
	return func(m protocol.Message) bool { return m.Name == name }
}

// recorder keeps the head of the body and counts its comment lines.
type recorder struct {
	r io.Reader
	s *Stream
}

func (r recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.s.mu.Lock()
	if k := min(n, 256-len(r.s.head)); k > 0 {
		r.s.head = append(r.s.head, p[:k]...)
	}
	r.s.pings += r.s.line.comments(p[:n])
	r.s.mu.Unlock()
	return n, err
}

// lineState follows line starts across reads, to count the lines that
// start with ':'.
type lineState struct {
	midLine   bool
	lastWasCR bool
}

func (l *lineState) comments(p []byte) int64 {
	var n int64
	for _, b := range p {
		switch {
		case b == '\n' && l.lastWasCR:
			// The LF of a CRLF: the line already ended.
		case b == '\r' || b == '\n':
			l.midLine = false
		case !l.midLine:
			l.midLine = true
			if b == ':' {
				n++
			}
		}
		l.lastWasCR = b == '\r'
	}
	return n
}

// watchdog resets the idle timer on every read that brings bytes.
type watchdog struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (w watchdog) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.timer.Reset(w.d)
	}
	return n, err
}
