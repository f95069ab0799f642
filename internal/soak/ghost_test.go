package soak

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/client"
)

// ghostProxy relays connections to a server, except for the first stream
// request that comes on a connection that already carried a request (a
// kept-alive connection the HTTP client reused): that one it delays, as a
// congested network may, and it drops the client's side of the connection
// at once. It forwards the request a second later and throws the answer
// away.
type ghostProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration

	mu     sync.Mutex
	fired  bool
	firedC chan struct{} // closed when the delayed request has reached the server
	stop   chan struct{} // closed when the test ends
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newGhostProxy(t *testing.T, target string, delay time.Duration) *ghostProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ghostProxy{ln: ln, target: target, delay: delay, firedC: make(chan struct{}), stop: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		close(p.stop)
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *ghostProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *ghostProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		ghost := make(chan struct{})
		p.wg.Go(func() { // server to client; a ghost's answer goes nowhere
			if _, err := io.Copy(c, s); err != nil {
				select {
				case <-ghost:
					io.Copy(io.Discard, s)
				default:
				}
			}
			c.Close()
		})
		p.wg.Go(func() { // client to server
			defer s.Close()
			buf := make([]byte, 32<<10)
			for requests := 0; ; requests++ {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				b := buf[:n]
				p.mu.Lock()
				hold := requests > 0 && !p.fired && bytes.HasPrefix(b, []byte("GET /events"))
				p.fired = p.fired || hold
				p.mu.Unlock()
				if hold {
					close(ghost)
					c.Close() // the client sees its reused connection fail
					select {
					case <-time.After(p.delay):
					case <-p.stop:
						return
					}
					s.Write(b)
					close(p.firedC)
					<-p.stop // the server side stays open until the test ends
					return
				}
				if _, err := s.Write(b); err != nil {
					return
				}
			}
		})
	}
}

// TestClientSurvivesItsOwnRetry: Go's http.Transport sends a GET again, on
// a new connection, when a reused kept-alive connection fails before the
// answer's first byte, although the first request may have reached the
// server. pkg/client sends its stream requests through the same Transport
// as its POSTs, so a stream request can go out twice. If the first copy
// reaches the server last, it replaces the stream the client is reading,
// which gets bye "replaced", and Run gives up with ErrReplaced ("another
// client attached to this session") though no other client exists. Run must
// go on.
func TestClientSurvivesItsOwnRetry(t *testing.T) {
	srv := testserver.Start(t, broadcast.WithChannels(fastChannels(50)...))
	p := newGhostProxy(t, srv.Addr, time.Second)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := client.New(p.URL(), client.WithHTTPClient(&http.Client{Transport: tr}), client.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	s, err := c.Open(ctx, "one") // leaves a kept-alive connection for Run's first request
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan client.Event, 64)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx, events) }()
	defer func() { stop(); <-done }()

	var fired <-chan struct{} = p.firedC
	// The client may avoid the danger altogether by not sending its stream
	// request on the reused connection: then nothing is delayed, and the
	// stream must simply go on.
	after := time.After(5 * time.Second)
	ticks := 0
	for {
		select {
		case ev := <-events:
			switch {
			case ev.Kind == client.State && ev.State == client.Failed:
				t.Fatalf("Run failed: %v (the stream was replaced by the client's own request, sent twice by http.Transport)", ev.Err)
			case ev.Kind == client.Bye:
				t.Logf("bye %q at %d", ev.Bye.Reason, ev.ID)
			case ev.Kind == client.Tick:
				ticks++
			}
		case err := <-done:
			done <- err
			if errors.Is(err, client.ErrReplaced) {
				t.Fatalf("Run returned %v: its stream was replaced by its own first request, which http.Transport had sent again on a new connection", err)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run returned %v", err)
			}
		case <-fired:
			fired, after, ticks = nil, time.After(3*time.Second), 0
		case <-after:
			if ticks == 0 {
				t.Fatal("no tick in the 3 s after the delayed request reached the server (or in 5 s without one)")
			}
			t.Logf("%d ticks in the last seconds (delayed request reached the server: %v)", ticks, fired == nil)
			return
		case <-ctx.Done():
			t.Fatal("the test ran out of time")
		}
	}
}
