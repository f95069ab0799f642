package proxytest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/client"
)

// channelsAt is the default channels at the given rates (ticks a second).
func channelsAt(t testing.TB, one, two, three float64) broadcast.Option {
	t.Helper()
	return broadcast.WithChannels(broadcast.DefaultChannelsAt(one, two, three)...)
}

// startServer is testserver.Start with channels fast enough that a test sees
// ticks at once, and the options after them.
func startServer(t testing.TB, opts ...broadcast.Option) *testserver.Server {
	t.Helper()
	return testserver.Start(t, append([]broadcast.Option{channelsAt(t, 40, 40, 40)}, opts...)...)
}

// newClient is pkg/client's Client for base over hc, logging nothing.
func newClient(t testing.TB, base string, hc *http.Client, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithHTTPClient(hc), client.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	c, err := client.New(base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// A run is Session.Run going for a test, with every event it delivered kept
// in order so the test can wait for one and look at them all afterwards.
type run struct {
	s      *client.Session
	cancel context.CancelFunc
	done   chan struct{} // closed when Run and the collector have returned
	err    error         // Run's result, after done

	mu      sync.Mutex
	log     []client.Event
	changed chan struct{} // closed (and replaced) whenever log grows
}

// startRun runs s until the test ends or stop is called.
func startRun(t testing.TB, s *client.Session) *run {
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{s: s, cancel: cancel, done: make(chan struct{}), changed: make(chan struct{})}
	events := make(chan client.Event, 64)
	runDone := make(chan struct{})
	// Run, in its own goroutine until ctx ends.
	go func() {
		defer close(runDone)
		r.err = s.Run(ctx, events)
	}()
	// The collector, in its own goroutine until Run has returned.
	go func() {
		defer close(r.done)
		for {
			select {
			case ev := <-events:
				r.mu.Lock()
				r.log = append(r.log, ev)
				close(r.changed)
				r.changed = make(chan struct{})
				r.mu.Unlock()
			case <-runDone:
				return
			}
		}
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop ends Run and waits for it; it returns Run's error unless that is the
// cancellation itself.
func (r *run) stop() error {
	r.cancel()
	<-r.done
	if errors.Is(r.err, context.Canceled) {
		return nil
	}
	return r.err
}

// events returns a copy of every event delivered so far.
func (r *run) events() []client.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.Event(nil), r.log...)
}

// wait returns the index and the first event at index from or later for
// which match is true, failing the test if none comes within d.
func (r *run) wait(t testing.TB, from int, d time.Duration, what string, match func(client.Event) bool) (int, client.Event) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		r.mu.Lock()
		for i := from; i < len(r.log); i++ {
			if match(r.log[i]) {
				ev := r.log[i]
				r.mu.Unlock()
				return i, ev
			}
		}
		from = max(from, len(r.log))
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-r.done:
			t.Fatalf("waiting for %s: Run returned %v", what, r.err)
		case <-timer.C:
			t.Fatalf("no %s within %v", what, d)
		}
	}
}

// A protoRecorder is a RoundTripper that notes the protocol of every answer,
// so a test can tell what actually went over the wire.
type protoRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	seen map[string]int // "HTTP/2.0" -> answers
}

func (p *protoRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(req)
	if err == nil {
		p.mu.Lock()
		if p.seen == nil {
			p.seen = make(map[string]int)
		}
		p.seen[resp.Proto]++
		p.mu.Unlock()
	}
	return resp, err
}

// protos returns what answers came over, by protocol.
func (p *protoRecorder) protos() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.seen))
	for k, v := range p.seen {
		out[k] = v
	}
	return out
}
